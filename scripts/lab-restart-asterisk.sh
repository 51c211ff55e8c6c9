#!/usr/bin/env bash
# Restart the lab's Asterisk (a real process restart: ARI WebSockets and AMI
# connections drop) and wait until it is ready again. Used by the reconnect tests.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

if ! lab_running "$LAB_ASTERISK"; then
  exec bash "$root/scripts/lab-up.sh"
fi
podman restart -t 5 "$LAB_ASTERISK" >/dev/null
lab_wait_asterisk
echo "lab: Asterisk restarted"
