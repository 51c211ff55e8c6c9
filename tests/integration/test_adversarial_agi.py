"""The FastAGI server as an attacker sees it: a real ``acdkit agi`` process on a real Redis,
flooded with idle, slow, dropped and oversized connections. Bounded outcomes only: the
process stays up, its open files stay under the cap, a real request still answers within a
bound, the log stays short, nothing is stored (docs/security.md)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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

HEADER = (Path(__file__).parents[1] / "unit" / "fixtures" / "agi" /
          "request-callback-offer.txt").read_bytes()
CAP = 48
HEADER_TIMEOUT = 1.5
FD_SLACK = 24  # Redis connections, the listening socket, the log, accepts in flight
ANSWER_BOUND = 1.0  # seconds for a real request's first command, during a flood


@pytest.fixture(scope="module")
def redis_db(redis_server: str) -> Iterator[str]:
    url = f"{redis_server}/7"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def agi(redis_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    env = {"ACDKIT_REDIS_URL": redis_db, "ACDKIT_AGI_PORT": str(free_tcp_port()),
           "ACDKIT_AGI_MAX_CONNECTIONS": str(CAP),
           "ACDKIT_AGI_HEADER_TIMEOUT": str(HEADER_TIMEOUT)}
    log = tmp_path_factory.mktemp("agi") / "agi.log"
    with listener(CLI, ["-v", "agi", "--no-ami"], env, log,
                  r"FastAGI listening on [0-9.]+:(\d+)") as made:
        yield made


async def real_request(port: int) -> float:
    """Seconds from connecting to the route's first command (a real call's header)."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HEADER)
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line.strip(), "the server closed a real request"
        return time.monotonic() - start
    finally:
        writer.transport.abort()


async def test_an_idle_flood_is_capped_and_a_real_request_still_answers(agi: Listener) -> None:
    before = agi.fds()
    idle = await open_idle(agi.port, 400)
    try:
        during = await settled_fds(agi, before + CAP + FD_SLACK)
        latency = await real_request(agi.port)
        print(f"idle flood of {len(idle)}: fds {before} -> {during}, "
              f"a real request answered in {latency * 1000:.0f} ms")
        assert during <= before + CAP + FD_SLACK
        assert latency < ANSWER_BOUND
        assert agi.alive()
    finally:
        await close_all(idle)


async def test_slowloris_headers_are_cut_at_the_header_timeout(agi: Listener) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", agi.port) for _ in range(20)]
    start = time.monotonic()
    for step in range(int(HEADER_TIMEOUT * 10) + 20):  # a byte every 0.1 s, never the end
        for _, writer in conns:
            if not writer.is_closing():
                writer.write(b"agi_x: y\n"[step % 9:step % 9 + 1])
        await asyncio.sleep(0.1)
        if all(r.at_eof() for r, _ in conns):
            break
    cut = [await closed_by_peer(reader, 0.5) for reader, _ in conns]
    assert all(cut), f"{cut.count(False)} slow headers still open"
    assert time.monotonic() - start < HEADER_TIMEOUT + 2.5
    assert await real_request(agi.port) < ANSWER_BOUND
    await close_all([w for _, w in conns])


async def test_routes_beyond_the_cap_are_refused_at_once_with_a_few_log_lines(
        agi: Listener) -> None:
    held = []
    for _ in range(CAP):  # every slot runs a route that waits for Asterisk's reply
        reader, writer = await asyncio.open_connection("127.0.0.1", agi.port)
        writer.write(HEADER)
        assert (await asyncio.wait_for(reader.readline(), 5)).strip()
        held.append(writer)
    log_before = len(agi.log_text())
    extra = [await asyncio.open_connection("127.0.0.1", agi.port) for _ in range(100)]
    for _, writer in extra:
        writer.write(HEADER)
    refused = [await closed_by_peer(reader, 1.0) for reader, _ in extra]
    assert all(refused)
    assert agi.fds() <= CAP + FD_SLACK + 10
    logged = agi.log_text()[log_before:]
    assert 1 <= logged.count("refused a new one") <= 5
    await close_all(held + [w for _, w in extra])
    await asyncio.sleep(0.5)
    assert await real_request(agi.port) < ANSWER_BOUND


async def test_a_flood_of_dropped_requests_logs_no_traceback_flood(agi: Listener) -> None:
    log_before = len(agi.log_text())
    for _ in range(10):
        batch = [await asyncio.open_connection("127.0.0.1", agi.port) for _ in range(30)]
        for _, writer in batch:
            writer.write(HEADER)
        await asyncio.sleep(0.05)
        await close_all([w for _, w in batch])
    await asyncio.sleep(1.0)
    latency = await real_request(agi.port)
    logged = agi.log_text()[log_before:]
    lines = logged.count("\n")
    print(f"300 dropped requests: {lines} log lines, {logged.count('Traceback')} tracebacks; "
          f"a real request answered in {latency * 1000:.0f} ms")
    assert logged.count("Traceback") <= 5
    assert lines <= 250  # at most 100 a minute of each per-request line, then a summary
    assert latency < ANSWER_BOUND
    assert agi.alive()


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.one_of(
    st.binary(max_size=2_048),
    st.binary(min_size=1, max_size=64).map(lambda b: b * (17_000 // len(b) + 1)),  # > 16 KB
    st.lists(st.text(max_size=40), max_size=200).map(
        lambda lines: ("\n".join(f"agi_{x}: {x}" for x in lines) + "\n\n").encode()),
))
def test_junk_and_oversized_headers_end_the_connection_and_store_nothing(
        agi: Listener, redis_db: str, junk: bytes) -> None:
    client = redis.Redis.from_url(redis_db)
    keys = client.dbsize()
    with socket.create_connection(("127.0.0.1", agi.port), timeout=HEADER_TIMEOUT + 3) as sock:
        try:
            sock.sendall(junk)
            got = b""
            while chunk := sock.recv(65_536):
                got += chunk
                if len(got) > 4_096:
                    break
        except ConnectionError:
            got = b""
    # Nothing, or the failure status for a header that names no route.
    assert got in (b"", b'SET VARIABLE ACDKIT_STATUS failed\n',
                   b'SET VARIABLE ACDKIT_STATUS "failed"\n'), got[:200]
    assert client.dbsize() == keys
    client.close()
    assert agi.alive()
