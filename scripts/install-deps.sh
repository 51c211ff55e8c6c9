#!/usr/bin/env bash
# Install the Debian packages acdkit's lab, tests and demo use, when any is missing.
set -euo pipefail
packages=(podman runc debootstrap uidmap sip-tester redis-server espeak-ng sox curl chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
