#!/usr/bin/env bash
# Private labs for running lab test sessions in parallel on one machine (developers).
# Each private lab N lives in its own network namespace `acdkit-N` with its own loopback, so it
# keeps the numbering plan's addresses and ports (127.0.0.1:5060/8088/5038/4573,
# 127.0.0.2-4) next to the main lab; its Asterisk and Redis are containers acdkit-asterisk-N
# and acdkit-redis-N of the same image. A lab test session takes the first free lab among the
# main one and these (tests/lab/conftest.py), so two sessions never share an Asterisk.
#   lab-ns.sh up NAME...       create or start private labs (after `make lab-up`)
#   lab-ns.sh refresh NAME     recreate NAME's containers when the lab image changed or they
#                              serve another checkout, else reload its configuration (run
#                              with NAME's lock held)
#   lab-ns.sh run NAME CMD...  run CMD inside NAME's namespace
#   lab-ns.sh down NAME...     remove them
# nsenter, not `ip netns exec`: the latter remounts /sys and podman's cgroupfs paths break.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

names() { LAB_ASTERISK=acdkit-asterisk-$1; LAB_REDIS=acdkit-redis-$1; NS=acdkit-$1; }

create() {
  names "$1"
  [ -e "/run/netns/$NS" ] || { ip netns add "$NS"; ip netns exec "$NS" ip link set lo up; }
  podman container exists "$LAB_ASTERISK" || podman run -d --name "$LAB_ASTERISK" \
    --network "ns:/run/netns/$NS" -v "$root/asterisk/etc:/etc/asterisk:ro,z" \
    -v "$root/dialplan:/etc/acdkit/dialplan:ro,z" "$LAB_IMAGE" asterisk -f -n >/dev/null
  local acl; mapfile -t acl < <(lab_redis_acl)
  podman container exists "$LAB_REDIS" || podman run -d --name "$LAB_REDIS" \
    --network "ns:/run/netns/$NS" "$LAB_IMAGE" redis-server --bind 127.0.0.1 --port 6379 \
    --appendonly yes --appendfsync always --maxmemory-policy noeviction "${acl[@]}" >/dev/null
  podman start "$LAB_ASTERISK" "$LAB_REDIS" >/dev/null
  LAB_ASTERISK=$LAB_ASTERISK nsenter --net="/run/netns/$NS" bash -c \
    "source '$root/scripts/lab-lib.sh' && lab_wait_asterisk"
}

refresh() {
  names "$1"
  # Recreate when the image changed, the lab serves another checkout's configuration, or
  # its configuration is gone (a checkout deleted and cloned again at the same path leaves
  # the container's bind mount on the deleted directory).
  if [ "$(podman container inspect -f '{{.Image}}' "$LAB_ASTERISK" 2>/dev/null)" \
       != "$(podman image inspect -f '{{.Id}}' "$LAB_IMAGE")" ] ||
     ! podman container inspect -f '{{range .Mounts}}{{.Source}} {{end}}' "$LAB_ASTERISK" |
       grep -qF "$root/asterisk/etc " ||
     ! podman exec "$LAB_ASTERISK" test -f /etc/asterisk/asterisk.conf 2>/dev/null; then
    podman rm -f "$LAB_ASTERISK" "$LAB_REDIS" >/dev/null 2>&1 || true
    create "$1"
  else
    create "$1"
    podman exec "$LAB_ASTERISK" asterisk -rx "core reload" >/dev/null
    podman exec "$LAB_ASTERISK" asterisk -rx "core waitfullybooted" >/dev/null
  fi
}

cmd="${1:-}"; shift || true
case "$cmd" in
  up) for n in "$@"; do create "$n"; done ;;
  refresh) refresh "$1" ;;
  run) names "$1"; shift; exec nsenter --net="/run/netns/$NS" "$@" ;;
  down) for n in "$@"; do names "$n"; podman rm -f "$LAB_ASTERISK" "$LAB_REDIS" >/dev/null 2>&1 || true
          ip netns del "$NS" 2>/dev/null || true; done ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
