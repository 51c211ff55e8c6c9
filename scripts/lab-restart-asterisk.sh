#!/usr/bin/env bash
# Restart the lab's Asterisk (a real process restart: ARI WebSockets and AMI
# connections drop) and wait until it is ready again. Used by the reconnect tests.
#   lab-restart-asterisk.sh           restart at once
#   lab-restart-asterisk.sh SECONDS   stop it, leave the node down SECONDS, start it
#                                     (make chaos: a node down; its calls are cut)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

down="${1:-}"
if ! lab_running "$LAB_ASTERISK"; then
  exec bash "$root/scripts/lab-up.sh"
fi
if [ -n "$down" ]; then
  podman stop -t 0 "$LAB_ASTERISK" >/dev/null
  sleep "$down"
  podman start "$LAB_ASTERISK" >/dev/null
else
  podman restart -t 5 "$LAB_ASTERISK" >/dev/null
fi
lab_wait_asterisk
echo "lab: Asterisk restarted${down:+ after $down s down}"
