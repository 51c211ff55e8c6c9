"""Shared fixtures: a real redis-server for the whole session, a clean database per test."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import IO

import hypothesis
import pytest
import redis

START_TIMEOUT = 10.0

# No per-example deadline: tests assert behaviour, never speed (the benchmarks measure that),
# and a loaded machine must not turn a slow example into a failure.
hypothesis.settings.register_profile("acdkit", deadline=None)
hypothesis.settings.load_profile("acdkit")
LAB_CLAIM = pytest.StashKey[IO[str]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """A session with lab tests locks its lab before any fixture runs (tests/lab/labs.py);
    a ``--collect-only`` session runs none, so it never waits for a busy lab."""
    if session.config.option.collectonly:
        return
    if any(item.nodeid.startswith("tests/lab/") for item in session.items):
        from tests.lab.labs import claim_lab

        session.config.stash[LAB_CLAIM] = claim_lab()


def end_process(proc: subprocess.Popen[bytes] | None, sig: int, wait: float) -> None:
    """Send ``sig`` to ``proc`` if it still runs and reap it; SIGKILL after ``wait`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(port: int, *options: str) -> subprocess.Popen[bytes]:
    """Start a throw-away redis-server on ``port`` (loopback, no persistence, and ``options``
    on its command line) and wait for it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (or not on PATH): run `make deps`, "
                    "which installs Debian's redis-server", pytrace=False)
    proc = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--port", str(port),
         "--bind", "127.0.0.1", "--daemonize", "no", "--loglevel", "warning", *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            try:
                if client.ping():
                    return proc
            except redis.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                proc.kill()
                pytest.fail(f"redis-server on port {port} did not start:\n{out}", pytrace=False)
            time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A redis-server on a free port for the session; yields its base URL."""
    port = free_port()
    proc = start_redis(port)
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        end_process(proc, signal.SIGTERM, 5)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The URL of database 0 of the session's redis-server, empty before and after the test."""
    url = f"{redis_server}/0"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
        yield url
        client.flushdb()
    finally:
        client.close()
