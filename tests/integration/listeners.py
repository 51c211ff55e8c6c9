"""A listener of acdkit in its own process, for the adversarial tests: start it, find its port
in its log, count its open file descriptors, read what it logged."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CLI = "import sys; from acdkit.cli import main; sys.exit(main())"


@dataclass
class Listener:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


def free_tcp_port() -> int:
    """A TCP port free on loopback now (acdkit's config refuses port 0 for agi.port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def listener(code: str, args: list[str], env: dict[str, str], log: Path,
             listening: str) -> Iterator[Listener]:
    """Run ``python -c <code> <args>`` until the test ends; ``listening`` is a regex whose
    group 1 is the port, matched in the process's log."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 20
        while not (found := re.search(listening, log.read_text(errors="replace"))):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the listener did not start:\n{log.read_text()}")
            time.sleep(0.05)
        yield Listener(proc, int(found.group(1)), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def open_idle(port: int, count: int) -> list[asyncio.StreamWriter]:
    """Open ``count`` connections that send nothing (those the peer refused are counted too)."""
    writers = []
    for _ in range(count):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
    return writers


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.transport.abort()
    await asyncio.sleep(0)


async def closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the peer closes the connection within ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65_536):
                pass
        return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def settled_fds(process: Listener, bound: int, within: float = 3.0) -> int:
    """The process's open descriptors once they are at most ``bound`` (it may take a few
    loop turns under load to close what it refused), or what it has after ``within`` s."""
    deadline = time.monotonic() + within
    while (count := process.fds()) > bound and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return count
