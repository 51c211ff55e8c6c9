#!/usr/bin/env bash
# Make docker.io/library/debian:sid-slim locally when no registry can be pulled from:
# debootstrap a minimal sid root and import it into podman (docs/lab.md).
set -euo pipefail
image=docker.io/library/debian:sid-slim
if podman image exists "$image"; then exit 0; fi
if podman pull -q "$image" >/dev/null 2>&1; then exit 0; fi
root="$(mktemp -d /tmp/acdkit-sid.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "building $image with debootstrap (about a minute)"
debootstrap --variant=minbase sid "$root" http://deb.debian.org/debian >/dev/null
tar -C "$root" -c . | podman import - "$image" >/dev/null
