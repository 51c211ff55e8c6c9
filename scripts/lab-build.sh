#!/usr/bin/env bash
# Build the lab image localhost/acdkit-lab:latest when it is missing or when
# asterisk/Dockerfile changed since it was built (the image carries the file's
# sha256 as a label). Makes the debian:sid-slim base first if needed.
#   APT_OPTIONS   extra apt options for the build; default works around sid's
#                 expired Release file. Set it empty to build without them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

bash "$root/scripts/base-image.sh"
sum="$(sha256sum "$root/asterisk/Dockerfile" | cut -c1-64)"
built="$(podman image inspect -f '{{index .Labels "acdkit.dockerfile.sha256"}}' "$LAB_IMAGE" \
  2>/dev/null || true)"
[ "$built" = "$sum" ] && exit 0
echo "lab: building $LAB_IMAGE"
podman build --pull=never --network=host \
  --build-arg APT_OPTIONS="${APT_OPTIONS--o Acquire::Check-Valid-Until=false}" \
  --label "acdkit.dockerfile.sha256=$sum" -t "$LAB_IMAGE" "$root/asterisk"
