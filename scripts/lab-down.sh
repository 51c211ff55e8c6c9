#!/usr/bin/env bash
# Stop and remove the lab's containers (Asterisk, Redis, serve, worker).
# Named volumes (Redis AOF, recordings) stay; pass --volumes to drop them too.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

lab_compose --profile app --profile web down "$@" >/dev/null 2>&1 || true
# Whatever compose did not know about (a container started by hand, an old project).
podman rm -f acdkit-serve acdkit-worker "$LAB_REDIS" "$LAB_ASTERISK" >/dev/null 2>&1 || true
echo "lab: down"
