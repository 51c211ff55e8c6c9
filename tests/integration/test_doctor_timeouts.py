"""`acdkit doctor` against peers that accept a connection and never answer: each check fails
with a reason that says so ("timed out after N s"), never an empty one (asyncio's
TimeoutError has no message)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from acdkit.config import AmiSettings, AriSettings, Secret, Settings
from acdkit.doctor import check_ami, check_ari, reason

pytestmark = pytest.mark.integration


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A TCP server that accepts and keeps every connection open without a byte."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_silent_ami_fails_with_timed_out_after(silent_port: int) -> None:
    settings = Settings(ami=AmiSettings(port=silent_port, secret=Secret("s3cret-x")))
    [check] = await check_ami(settings, seconds=0.3)
    assert check.status == "FAIL"
    assert check.detail.endswith("did not answer the login: timed out after 0.3 s"), check


async def test_a_silent_ari_fails_with_timed_out_after(silent_port: int) -> None:
    settings = Settings(ari=AriSettings(url=f"http://127.0.0.1:{silent_port}",
                                        password=Secret("s3cret-x")))
    checks, version = await check_ari(settings, seconds=0.3)
    assert version == "" and [c.status for c in checks] == ["FAIL"]
    assert "timed out after 0.3 s" in checks[0].detail, checks[0]


def test_a_reason_is_never_empty() -> None:
    assert reason(TimeoutError(), 5) == "timed out after 5 s"
    assert reason(OSError(), 5) == "OSError"
    assert reason(ConnectionRefusedError(111, "Connection refused"), 5) == \
        "[Errno 111] Connection refused"
