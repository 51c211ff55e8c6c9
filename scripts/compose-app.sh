#!/usr/bin/env bash
# Entry point of the compose services `serve` and `worker` (asterisk/compose.yaml,
# profile app): run acdkit from the mounted repository (/src, read-only) with its
# dependencies in a venv kept in a named volume, installed on the first start.
# Usage inside the container: compose-app.sh serve|worker [ARGS...]
set -euo pipefail
venv=/venv
if [ ! -x "$venv/bin/python" ] || [ ! -e "$venv/.acdkit-deps" ] \
    || ! cmp -s /src/pyproject.toml "$venv/.acdkit-deps"; then
  python3 -m venv "$venv"
  deps="$("$venv/bin/python" - <<'PY'
import tomllib
with open("/src/pyproject.toml", "rb") as fh:
    print(" ".join(tomllib.load(fh)["project"]["dependencies"]))
PY
)"
  # shellcheck disable=SC2086  # one argument per requirement
  "$venv/bin/pip" install -q --disable-pip-version-check $deps
  cp /src/pyproject.toml "$venv/.acdkit-deps"
fi
# The package is used in place (a read-only mount cannot take an install's build files).
export PYTHONPATH=/src/src${PYTHONPATH:+:$PYTHONPATH}
exec "$venv/bin/python" -m acdkit "$@"
