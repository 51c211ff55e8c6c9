"""The systemd units (workers/systemd/): one per process, restarted on failure, as the acdkit
user, hardened, with secrets from the environment file; systemd-analyze finds no error."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "workers" / "systemd"
ROLES = ("serve", "agi", "worker", "web")
HARDENING = {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
             "PrivateTmp": "yes", "ReadWritePaths": "/var/lib/acdkit",
             "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
             "LimitNOFILE": "65536", "User": "acdkit", "Restart": "on-failure",
             "EnvironmentFile": "/etc/acdkit/acdkit.env"}


def _service(role: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / f"acdkit-{role}.service")
    return parser["Service"]


@pytest.mark.parametrize("role", ROLES)
def test_unit_runs_its_role_hardened(role: str) -> None:
    service = _service(role)
    assert service["ExecStart"] == f"/opt/acdkit/venv/bin/acdkit {role}"
    assert {k: service.get(k) for k in HARDENING} == HARDENING


def test_secrets_example_names_every_secret() -> None:
    text = (UNITS / "acdkit.env.example").read_text()
    for name in ("ACDKIT_ARI_PASSWORD", "ACDKIT_AMI_SECRET", "ACDKIT_REDIS_URL"):
        assert f"\n{name}=" in text


def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian: apt-get install systemd)"
    acdkit = shutil.which("acdkit") or str(Path(__file__).parents[2] / ".venv/bin/acdkit")
    for role in ROLES:  # verify checks that ExecStart exists: point it at this install's
        text = (UNITS / f"acdkit-{role}.service").read_text()
        (tmp_path / f"acdkit-{role}.service").write_text(
            text.replace("/opt/acdkit/venv/bin/acdkit", acdkit))
    done = subprocess.run([analyze, "verify", *sorted(map(str, tmp_path.glob("*.service")))],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
