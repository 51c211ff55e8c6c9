# Shared by the lab scripts (sourced): podman settings, names, and readiness checks.
# shellcheck shell=bash
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/podman-env.sh
source "$root/scripts/podman-env.sh"

LAB_IMAGE=localhost/acdkit-lab:latest
LAB_ASTERISK="${LAB_ASTERISK:-acdkit-asterisk}"  # another name runs a second lab (see scripts/lab-ns.sh)
LAB_REDIS="${LAB_REDIS:-acdkit-redis}"
LAB_COMPOSE_FILE="$root/asterisk/compose.yaml"
LAB_TIMEOUT="${LAB_TIMEOUT:-90}"

# One value from asterisk/acdkit.toml: lab_setting SECTION KEY (strings and numbers only).
lab_setting() {
  awk -v want="$1" -v key="$2" '
    /^\[/ { section = substr($0, 2, index($0, "]") - 2); next }
    section == want && $1 == key {
      sub(/^[^=]*=[ \t]*/, ""); gsub(/^"|"[ \t]*$/, ""); print; exit
    }' "$root/asterisk/acdkit.toml"
}

# The lab Redis's users as redis-server arguments: no default user, and the ACL user of
# redis.url (keys acdkit:* and rq:*, every channel, no admin command; docs/security-policy.md).
# asterisk/compose.yaml holds the same line.
lab_redis_acl() {
  local url userinfo
  url="$(lab_setting redis url)"; userinfo="${url#*://}"; userinfo="${userinfo%%@*}"
  # redis-server takes each word of a --user line as an argument of its own.
  printf '%s\n' --user default off --user "${userinfo%%:*}" on ">${userinfo#*:}" '~acdkit:*' \
    '~rq:*' '&*' +@all -@admin -@dangerous +info '+config|get' '+client|setname' \
    '+client|getname' '+client|id'
}

# podman-compose from the repo's venv (pip install -e '.[dev]'), else from PATH.
lab_compose() {
  local pc="$root/.venv/bin/podman-compose"
  [ -x "$pc" ] || pc="$(command -v podman-compose || true)"
  if [ -z "$pc" ]; then
    echo "podman-compose not found: pip install -e '.[dev]' (or pip install podman-compose)" >&2
    return 127
  fi
  "$pc" -f "$LAB_COMPOSE_FILE" "$@"
}

lab_running() {
  [ "$(podman container inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = "true" ]
}

# Asterisk is fully booted, ARI answers with the lab's credentials and AMI greets.
lab_asterisk_ready() {
  lab_running "$LAB_ASTERISK" || return 1
  podman exec "$LAB_ASTERISK" asterisk -rx "core waitfullybooted" >/dev/null 2>&1 || return 1
  local url user password
  url="$(lab_setting ari url)"; user="$(lab_setting ari username)"
  password="$(lab_setting ari password)"
  curl -fsS -m 2 -o /dev/null -u "$user:$password" "$url/ari/asterisk/info" 2>/dev/null || return 1
  lab_ami_greets
}

lab_ami_greets() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1" && IFS= read -r -t 2 banner <&3 &&
    [[ "$banner" == "Asterisk Call Manager/"* ]]' \
    "$(lab_setting ami host)" "$(lab_setting ami port)" 2>/dev/null
}

# Something answers PING at the lab's Redis URL (ours, or one already on the host).
lab_redis_ready() {
  if command -v redis-cli >/dev/null; then
    redis-cli -u "$(lab_setting redis url)" ping 2>/dev/null | grep -q PONG
  else
    lab_running "$LAB_REDIS" &&
      podman exec "$LAB_REDIS" redis-cli -u "$(lab_setting redis url)" ping 2>/dev/null |
      grep -q PONG
  fi
}

# Wait until Asterisk is ready; on timeout print the container's log tail and fail.
lab_wait_asterisk() {
  local deadline=$((SECONDS + LAB_TIMEOUT))
  until lab_asterisk_ready; do
    if ((SECONDS >= deadline)) || ! lab_running "$LAB_ASTERISK"; then
      echo "lab: Asterisk not ready after ${LAB_TIMEOUT}s (or its container stopped); log tail:" >&2
      podman logs --tail 40 "$LAB_ASTERISK" >&2 || true
      podman exec "$LAB_ASTERISK" tail -n 40 /var/log/asterisk/messages.log >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}
