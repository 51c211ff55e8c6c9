#!/usr/bin/env bash
# Build acdkit's image (asterisk/acdkit.Containerfile) as localhost/acdkit:latest from a staged
# context holding only what the image needs (never .venv or var/), offline except for PyPI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/base-image.sh"
context="$(mktemp -d /tmp/acdkit-image.XXXXXX)"
trap 'rm -rf "$context"' EXIT
cd "$root"
git ls-files -z -co --exclude-standard -- src dialplan pyproject.toml README.md requirements-app.lock \
    asterisk/prompts.tsv asterisk/make-prompts.sh | xargs -0 cp --parents -t "$context"
# pip inside the build trusts the same extra CA as pip here (PIP_CERT), if any.
mkdir -p "$context/ca"
if [ -n "${PIP_CERT:-}" ] && [ -s "$PIP_CERT" ]; then cp "$PIP_CERT" "$context/ca/extra.pem"; fi
image="${ACDKIT_IMAGE:-localhost/acdkit:latest}"
build() {
  # shellcheck disable=SC2086  # IMAGE_BUILD_ARGS: extra podman build options, e.g. --no-cache
  podman build --pull=never --network=host ${IMAGE_BUILD_ARGS:-} --build-arg APT_OPTIONS="$1" \
    -f asterisk/acdkit.Containerfile -t "$image" "$context"
}
log="$context.log"
trap 'rm -rf "$context" "$log"' EXIT
started=$SECONDS
if ! build "${APT_OPTIONS:-}" 2>&1 | tee "$log"; then
  # As scripts/lab-build.sh: sid's Release file may be past its Valid-Until date.
  grep -qiE 'no longer valid|Valid-Until|is expired' "$log" || exit 1
  echo "image: WARNING: retrying with -o Acquire::Check-Valid-Until=false" >&2
  build "-o Acquire::Check-Valid-Until=false"
fi
echo "image: $image built in $((SECONDS - started)) s"
