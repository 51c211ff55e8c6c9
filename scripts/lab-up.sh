#!/usr/bin/env bash
# Bring the lab up and wait until it is usable: Asterisk fully booted, ARI
# answering with the lab's credentials, AMI greeting (DESIGN.md section 6).
# Also starts the lab's Redis on 127.0.0.1:6379 for `make demo` unless something
# already listens there (the tests start their own redis-server on a free port).
# Idempotent: returns at once when the lab is already up. Fails with the
# container's log tail when Asterisk is not ready within LAB_TIMEOUT (90 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

if lab_asterisk_ready; then
  echo "lab: Asterisk already up"
  exit 0
fi
bash "$root/scripts/lab-build.sh"

# A stopped or half-started container of the same name would block `up`.
podman rm -f "$LAB_ASTERISK" >/dev/null 2>&1 || true
services=(asterisk)
if ! lab_running "$LAB_REDIS"; then
  podman rm -f "$LAB_REDIS" >/dev/null 2>&1 || true
  if lab_redis_ready; then
    echo "lab: a Redis already answers on $(lab_setting redis url); not starting the lab's"
  else
    services+=(redis)
  fi
fi
# podman without systemd cannot schedule compose healthchecks (they are for Docker
# users): drop its two error lines per container, keep any other message.
lab_compose up -d --no-build "${services[@]}" >/dev/null \
  2> >(grep -v 'unable to get systemd connection' >&2)
lab_wait_asterisk
echo "lab: up (Asterisk $(podman exec "$LAB_ASTERISK" asterisk -V | cut -d' ' -f2))"
