# Sourced by the Makefile's lab targets: podman settings that work on hosts
# without systemd cgroups or default ulimits (DESIGN.md section 6).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/asterisk/containers.conf}"
