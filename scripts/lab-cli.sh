#!/usr/bin/env bash
# The lab Asterisk's CLI.
#   lab-cli.sh                      interactive console with a dialplan trace (asterisk -rvvv)
#   lab-cli.sh queue show sales     one command (asterisk -rx), output on stdout
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

if [ $# -gt 0 ]; then
  exec podman exec "$LAB_ASTERISK" asterisk -rx "$*"
fi
tty=(-i)
[ -t 0 ] && tty=(-it)
exec podman exec "${tty[@]}" "$LAB_ASTERISK" asterisk -rvvv
