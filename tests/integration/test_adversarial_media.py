"""The audio endpoint of ``serve`` as an attacker sees it: the real endpoint (ari/media.py) in
its own process on a real Redis, flooded with idle, slow and oversized requests. Bounded
outcomes only: the process stays up, its open files stay under the cap, a real request still
answers within a bound, the log stays short, nothing is stored (docs/security.md)."""

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
    Listener,
    close_all,
    closed_by_peer,
    listener,
    open_idle,
    settled_fds,
)

from acdkit.ari.media import version
from acdkit.core.tasks import Task, TaskKind
from acdkit.store.codec import task_to_hash

pytestmark = pytest.mark.integration

CAP = 32
HEADER_TIMEOUT = 1.0
FD_SLACK = 24  # Redis connections, the listening socket, the log, accepts in flight
ANSWER_BOUND = 2.0  # seconds for a real request during a flood (a cached name)
NAME = "Ada Lovelace"
T0 = 1_800_000_000.0
SERVE_MEDIA = """
import asyncio, logging
from acdkit.bootstrap import open_pool, voice_media
from acdkit.config import load_settings
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
async def main():
    settings = load_settings()
    await voice_media(await open_pool(settings), settings)
asyncio.run(main())
"""


@pytest.fixture(scope="module")
def redis_db(redis_server: str) -> Iterator[str]:
    url = f"{redis_server}/8"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    # A task with a customer name: what an outbound whisper fetches.
    client.hset("acdkit:{pool}:task:t1", mapping=task_to_hash(
        Task(id="t1", kind=TaskKind.OUTBOUND, skill="sales", created_at=T0, enqueued_at=T0,
             number="+12125550123", name=NAME)))
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def media(redis_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    tmp = tmp_path_factory.mktemp("media")
    env = {"ACDKIT_REDIS_URL": redis_db, "ACDKIT_REQUESTS_MEDIA_LISTEN": "127.0.0.1:0",
           "ACDKIT_REQUESTS_AUDIO_DIR": str(tmp),
           "ACDKIT_REQUESTS_MEDIA_MAX_CONNECTIONS": str(CAP),
           "ACDKIT_REQUESTS_MEDIA_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
           "ACDKIT_REQUESTS_MEDIA_IDLE_TIMEOUT": "2"}
    with listener(SERVE_MEDIA, [], env, tmp / "media.log",
                  r"voice request media on http://[0-9.]+:(\d+)") as made:
        yield made


async def real_request(port: int) -> float:
    """Seconds for a whole GET of a task's spoken name (Asterisk's fetch)."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET /task/t1/name-{version(NAME)}.wav HTTP/1.1\r\nHost: x\r\n"
                     "Connection: close\r\n\r\n".encode())
        body = await asyncio.wait_for(reader.read(), 20)
        assert body.startswith(b"HTTP/1.1 200"), body[:100]
        return time.monotonic() - start
    finally:
        writer.transport.abort()


async def test_an_idle_flood_is_capped_and_a_real_request_still_answers(
        media: Listener) -> None:
    await real_request(media.port)  # spoken once, then from the cache
    before = media.fds()
    idle = await open_idle(media.port, 300)
    try:
        during = await settled_fds(media, before + CAP + FD_SLACK)
        latency = await real_request(media.port)
        print(f"idle flood of {len(idle)}: fds {before} -> {during}, "
              f"a real request answered in {latency * 1000:.0f} ms")
        assert during <= before + CAP + FD_SLACK
        assert latency < ANSWER_BOUND
        assert media.alive()
    finally:
        await close_all(idle)


async def test_idle_and_slow_connections_are_closed_at_the_header_timeout(
        media: Listener) -> None:
    idle = [await asyncio.open_connection("127.0.0.1", media.port) for _ in range(5)]
    slow = [await asyncio.open_connection("127.0.0.1", media.port) for _ in range(5)]
    request = b"GET /task/t1/name-00.wav HTTP/1.1\r\nHost: x\r\n"
    start = time.monotonic()
    for step in range(int(HEADER_TIMEOUT * 10) + 20):  # a byte every 0.1 s, never the end
        for _, writer in slow:
            if not writer.is_closing():
                writer.write(request[step % len(request):step % len(request) + 1])
        await asyncio.sleep(0.1)
        if all(r.at_eof() for r, _ in idle + slow):
            break
    cut = [await closed_by_peer(reader, 0.5) for reader, _ in idle + slow]
    assert all(cut), f"{cut.count(False)} idle or slow connections still open"
    assert time.monotonic() - start < HEADER_TIMEOUT + 2.5
    await close_all([w for _, w in idle + slow])


async def test_a_flood_logs_a_few_lines(media: Listener) -> None:
    log_before = len(media.log_text())
    for _ in range(3):
        idle = await open_idle(media.port, 100)
        await asyncio.sleep(0.2)
        await close_all(idle)
    logged = media.log_text()[log_before:]
    print(f"300 flood connections: {logged.count(chr(10))} log lines")
    assert logged.count("Traceback") == 0
    assert logged.count("\n") <= 20


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.one_of(
    st.binary(max_size=2_048).map(lambda b: b + b"\r\n\r\n"),
    st.integers(9_000, 40_000).map(lambda n: b"GET /" + b"a" * n + b" HTTP/1.1\r\n\r\n"),
    st.integers(9_000, 40_000).map(
        lambda n: b"GET / HTTP/1.1\r\nX-Big: " + b"b" * n + b"\r\n\r\n"),
    st.integers(10_000, 100_000).map(
        lambda n: b"POST /task/t1/name-00.wav HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % n
        + b"c" * n),
))
def test_junk_and_oversized_requests_get_an_error_and_store_nothing(
        media: Listener, redis_db: str, junk: bytes) -> None:
    client = redis.Redis.from_url(redis_db)
    keys = client.dbsize()
    got = b""
    with socket.create_connection(("127.0.0.1", media.port), timeout=HEADER_TIMEOUT + 3) as sock:
        try:
            sock.sendall(junk)
            while chunk := sock.recv(65_536):
                got += chunk
        except (ConnectionError, TimeoutError):
            pass
    if got:  # an HTTP error, never audio
        status = got.split(b" ", 2)[1]
        assert status[:1] in (b"4", b"5"), got[:200]
    assert client.dbsize() == keys
    client.close()
    assert media.alive()


def test_the_endpoint_is_still_there(media: Listener) -> None:
    assert asyncio.run(real_request(media.port)) < ANSWER_BOUND
    assert Path(f"/proc/{media.proc.pid}").exists()
