"""`acdkit doctor`'s AMI checks against a small fake AMI (tests/integration/amifake.py):
the login, and whether the user may run CLI commands (``write=command``)."""

from __future__ import annotations

import pytest
from amifake import fake_ami

from acdkit.config import AmiSettings, Secret, Settings
from acdkit.doctor import check_ami


def _settings(port: int) -> Settings:
    return Settings(ami=AmiSettings(port=port, secret=Secret("s3cret-for-the-fake")))


@pytest.mark.parametrize(("login_ok", "command_ok", "expected"), [
    (False, False, [("ami", "FAIL")]),
    (True, False, [("ami", "OK"), ("ami privileges", "OK")]),
    (True, True, [("ami", "OK"), ("ami privileges", "WARN")]),
])
async def test_ami_login_and_privileges(login_ok: bool, command_ok: bool,
                                        expected: list[tuple[str, str]]) -> None:
    with fake_ami(login_ok=login_ok, command_ok=command_ok) as ami:
        checks = await check_ami(_settings(ami.port))
    assert [(c.check, c.status) for c in checks] == expected, checks
    assert ami.actions[0].startswith(b"Action: Login\r\nUsername: acdkit\r\n")
    assert all(b"s3cret" not in a for a in ami.actions[1:])  # only the Login carries it
    assert all("s3cret" not in c.detail for c in checks)
    if command_ok:
        assert "write=command" in checks[1].detail
        assert ami.actions[1] == b"Action: Command\r\nCommand: core show uptime"


async def test_an_unreachable_ami_is_one_failure() -> None:
    with fake_ami() as ami:
        port = ami.port
    checks = await check_ami(_settings(port))
    assert [(c.check, c.status) for c in checks] == [("ami", "FAIL")]
    assert "cannot reach AMI" in checks[0].detail
