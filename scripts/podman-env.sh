# Sourced by the Makefile's lab targets: podman settings that work on hosts
# without systemd cgroups or default ulimits (docs/lab.md).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/asterisk/containers.conf}"
