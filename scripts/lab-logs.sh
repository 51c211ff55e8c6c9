#!/usr/bin/env bash
# Show the lab Asterisk's log (notices, warnings, errors: /var/log/asterisk/messages.log).
#   lab-logs.sh          the last 200 lines
#   lab-logs.sh -f       follow
#   lab-logs.sh N        the last N lines
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

if [ "${1:-}" = "-f" ]; then
  exec podman exec "$LAB_ASTERISK" tail -n 50 -F /var/log/asterisk/messages.log
fi
exec podman exec "$LAB_ASTERISK" tail -n "${1:-200}" /var/log/asterisk/messages.log
