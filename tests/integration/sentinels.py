"""A real Redis Sentinel group on loopback: one primary, two replicas, three sentinels.

Every process runs from its own temporary directory (sentinels rewrite their configuration
file; nothing persists: ``--save ''``). Sentinels judge a primary down after
``DOWN_AFTER_MS`` and finish a failover within seconds, so tests can kill or fail over the
primary and watch acdkit follow. ``close()`` stops every process it started, by its pid.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
from tests.conftest import end_process

MASTER = "acdkit"
QUORUM = 2
DOWN_AFTER_MS = 1_000
FAILOVER_TIMEOUT_MS = 6_000
READY_TIMEOUT = 30.0  # seconds for the group to form (sentinels find each other by hellos)
FAILOVER_WAIT = 30.0  # seconds for a failover to finish, under load


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 0.1 s until it is true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class SentinelGroup:
    """The processes of the group, by port; ``data`` holds the three data ports (the first
    one starts as the primary), ``sentinels`` the three sentinel ports."""

    root: Path
    data: list[int] = field(default_factory=list)
    sentinels: list[int] = field(default_factory=list)
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sentinel_list(self) -> str:
        """``redis.sentinels`` for acdkit's settings."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinels)

    def start(self) -> None:
        self.data = [free_port() for _ in range(3)]
        self.sentinels = [free_port() for _ in range(3)]
        self.start_data(self.data[0])
        for port in self.data[1:]:
            self.start_data(port, replica_of=self.data[0])
        for port in self.sentinels:
            self.start_sentinel(port)
        wait_until(self._formed, READY_TIMEOUT, "the sentinel group to form")

    def start_data(self, port: int, replica_of: int | None = None) -> None:
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
                "--loglevel", "warning"]
        if replica_of is not None:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._spawn(port, args)
        wait_until(lambda: self.client(port).ping(), 10.0, f"redis-server on {port}")

    def start_sentinel(self, port: int) -> None:
        conf = self.root / f"sentinel-{port}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self.root}\nloglevel warning\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.data[0]} {QUORUM}\n"
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER} 2\n")
        self._spawn(port, [str(conf), "--sentinel"])
        wait_until(lambda: self.client(port).ping(), 10.0, f"sentinel on {port}")

    def _spawn(self, port: int, args: list[str]) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.procs[port] = subprocess.Popen([binary, *args], cwd=self.root,
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1,
                           decode_responses=True)

    def _ask(self, port: int, *command: str) -> object:
        with self.client(port) as c:
            return c.execute_command(*command)

    def _formed(self) -> bool:
        """Every sentinel knows the primary, both replicas and both other sentinels."""
        for port in self.sentinels:
            with self.client(port) as c:
                state = c.sentinel_master(MASTER)
            if state["num-slaves"] < 2 or state["num-other-sentinels"] < 2:
                return False
        return self.online_replicas() == 2

    def primary(self) -> int:
        """The port the sentinels name as the primary now."""
        with self.client(self.sentinels[0]) as c:
            _, port = c.sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def online_replicas(self, primary: int | None = None) -> int:
        with self.client(primary or self.primary()) as c:
            info = c.info("replication")
        return sum(1 for key, value in info.items()
                   if key.startswith("slave") and isinstance(value, dict)
                   and value.get("state") == "online")

    def wait_new_primary(self, old: int) -> int:
        """Wait until the failover is over (every sentinel names the same other primary, none
        has one in progress) and the new primary answers as one; its port. acdkit's
        confirmations ask every sentinel (store/durability.py)."""
        def moved() -> bool:
            named = set()
            for sentinel in self.sentinels:
                with self.client(sentinel) as c:
                    state = c.sentinel_master(MASTER)
                if "failover_in_progress" in str(state.get("flags", "")):
                    return False  # not over yet: acdkit confirms nothing meanwhile
                named.add(int(state["port"]))
            [port] = named if len(named) == 1 else [old]
            with self.client(port) as c:
                return port != old and c.info("replication")["role"] == "master"

        wait_until(moved, FAILOVER_WAIT, f"a new primary instead of {old}")
        return self.primary()

    def failover(self) -> tuple[int, int]:
        """``SENTINEL FAILOVER``, waited for until the old primary is a replica again (until
        then it still takes writes, which it drops when it is turned into one):
        (old primary, new primary)."""
        old = self.primary()
        self._ask(self.sentinels[0], "SENTINEL", "FAILOVER", MASTER)
        new = self.wait_new_primary(old)

        def demoted() -> bool:
            with self.client(old) as c:
                return c.info("replication")["role"] == "slave"

        wait_until(demoted, FAILOVER_WAIT, f"the old primary {old} to be a replica")
        return old, new

    def kill(self, port: int) -> None:
        """SIGKILL the redis-server on ``port`` (it loses what it did not replicate)."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(timeout=10)

    def stop(self, port: int) -> None:
        end_process(self.procs.pop(port), signal.SIGTERM, 10)

    def close(self) -> None:
        for port in list(self.procs):
            self.stop(port)
