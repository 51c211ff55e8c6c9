"""``acdkit web`` as an attacker sees it: the real process on a real Redis, flooded with idle
and slow connections. Its listener has the same limits as the audio endpoint
(httplimits.py): the open files stay under the cap, idle sockets are closed at the header
timeout, and the wallboard still answers (docs/security.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from listeners import (
    CLI,
    Listener,
    close_all,
    closed_by_peer,
    free_tcp_port,
    listener,
    open_idle,
    settled_fds,
)

pytestmark = pytest.mark.integration

CAP = 24
HEADER_TIMEOUT = 1.0
FD_SLACK = 24  # Redis connections, the listening socket, the log, accepts in flight
ANSWER_BOUND = 2.0  # seconds for the wallboard during a flood


@pytest.fixture(scope="module")
def pages(redis_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    env = {"ACDKIT_REDIS_URL": f"{redis_server}/9", "ACDKIT_WEB_MAX_CONNECTIONS": str(CAP),
           "ACDKIT_WEB_HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    log = tmp_path_factory.mktemp("web") / "web.log"
    with listener(CLI, ["-v", "web", "--listen", f"127.0.0.1:{free_tcp_port()}"], env, log,
                  r"acdkit.bootstrap: acdkit web: http://[0-9.]+:(\d+)/wallboard") as made:
        yield made


async def wallboard(port: int) -> float:
    """Seconds for a whole GET of the wallboard."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /wallboard HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = await asyncio.wait_for(reader.read(), 20)
        assert body.startswith(b"HTTP/1.1 200"), body[:100]
        return time.monotonic() - start
    finally:
        writer.transport.abort()


async def test_an_idle_flood_is_capped_and_the_wallboard_still_answers(pages: Listener) -> None:
    await wallboard(pages.port)
    before = pages.fds()
    idle = await open_idle(pages.port, 200)
    try:
        during = await settled_fds(pages, before + CAP + FD_SLACK)
        latency = await wallboard(pages.port)
        print(f"idle flood of {len(idle)}: fds {before} -> {during}, "
              f"the wallboard answered in {latency * 1000:.0f} ms")
        assert during <= before + CAP + FD_SLACK
        assert latency < ANSWER_BOUND
        assert pages.alive()
    finally:
        await close_all(idle)


async def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(
        pages: Listener) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", pages.port)
    try:
        assert await closed_by_peer(reader, HEADER_TIMEOUT + 3)
    finally:
        writer.transport.abort()
