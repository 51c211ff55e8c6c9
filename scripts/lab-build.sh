#!/usr/bin/env bash
# Build the lab image localhost/acdkit-lab:latest when it is missing or when
# asterisk/Dockerfile changed since it was built (the image carries the file's
# sha256 as a label). Makes the debian:sid-slim base first if needed.
#   APT_OPTIONS   extra apt options for the build (empty by default). When apt
#                 reports sid's Release file as expired, the build is retried
#                 once with -o Acquire::Check-Valid-Until=false, loudly.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lab-lib.sh"

bash "$root/scripts/base-image.sh"
sum="$(cat "$root/asterisk/Dockerfile" "$root/asterisk/prompts.tsv" \
  "$root/asterisk/make-prompts.sh" | sha256sum | cut -c1-64)"
built="$(podman image inspect -f '{{index .Labels "acdkit.dockerfile.sha256"}}' "$LAB_IMAGE" \
  2>/dev/null || true)"
[ "$built" = "$sum" ] && exit 0
echo "lab: building $LAB_IMAGE"
build() {
  podman build --pull=never --network=host --build-arg APT_OPTIONS="$1" \
    --label "acdkit.dockerfile.sha256=$sum" -t "$LAB_IMAGE" "$root/asterisk"
}
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! build "${APT_OPTIONS:-}" 2>&1 | tee "$log"; then
  if grep -qiE 'no longer valid|Valid-Until|is expired' "$log"; then
    echo "lab: WARNING: Debian sid's Release file is past its Valid-Until date;" >&2
    echo "lab: WARNING: retrying with -o Acquire::Check-Valid-Until=false" >&2
    build "-o Acquire::Check-Valid-Until=false"
  else
    exit 1
  fi
fi
