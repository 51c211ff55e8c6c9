#!/usr/bin/env bash
# Bring the lab up and wait until it is usable: Asterisk fully booted, ARI
# answering with the lab's credentials, AMI greeting (docs/lab.md).
# Also starts the lab's Redis on 127.0.0.1:6379 for `make demo` unless a Redis
# already answers there (the tests start their own redis-server on a free port).
# Idempotent: returns at once when the lab is already up. Fails with the
# container's log tail when Asterisk is not ready within LAB_TIMEOUT (90 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

bash "$root/scripts/lab-build.sh"
services=()
# A running Asterisk from an older lab image is replaced by one from the new image.
running_image="$(podman inspect -f '{{.Image}}' "$LAB_ASTERISK" 2>/dev/null || true)"
current_image="$(podman image inspect -f '{{.Id}}' "$LAB_IMAGE" 2>/dev/null || true)"
if [ -n "$running_image" ] && [ "$running_image" != "$current_image" ]; then
  echo "lab: the lab image changed; restarting Asterisk on the new one"
  services+=(asterisk)
elif ! lab_asterisk_ready; then
  services+=(asterisk)
fi
lab_redis_ready || services+=(redis)
if [ ${#services[@]} -eq 0 ]; then
  echo "lab: already up"
  exit 0
fi
if ! lab_running "$LAB_REDIS" && [[ " ${services[*]} " != *" redis "* ]]; then
  echo "lab: a Redis already answers on $(lab_setting redis url); not starting the lab's"
fi

# A stopped or half-started container of the same name would make `up` fail.
for service in "${services[@]}"; do
  podman rm -f "acdkit-$service" >/dev/null 2>&1 || true
done
lab_compose up -d --no-build "${services[@]}" >/dev/null
lab_wait_asterisk
echo "lab: up (${services[*]} started; Asterisk $(podman exec "$LAB_ASTERISK" asterisk -V | cut -d' ' -f2))"
