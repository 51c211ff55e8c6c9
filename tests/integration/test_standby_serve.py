"""Two `acdkit serve` processes for one node, on a real redis-server (Asterisk out of reach:
the lease is taken before ARI is even tried): one active, one standby that `acdkit doctor`
lists; the standby takes over when the active is SIGKILLed; an active that finds its lease
taken stops and exits 75; a serve stopped by SIGTERM gives the lease up (docs/standby.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from tests.conftest import end_process, free_port

pytestmark = pytest.mark.integration

LEASE = "acdkit:{pool}:lease:n1:acdkit"


class Serve:
    def __init__(self, env: dict[str, str], cwd: Path, name: str) -> None:
        self.env, self.cwd = env, cwd
        self.log_path = cwd / f"{name}.log"
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "acdkit", "-v", "serve"],
                                         env=env, cwd=cwd, stdout=out,
                                         stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 15.0) -> float:
        started = time.monotonic()
        while text not in self.log():
            assert time.monotonic() - started < timeout, f"no {text!r} in:\n{self.log()}"
            time.sleep(0.05)
        return time.monotonic() - started


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACDKIT_")}
    return {**clean, "ACDKIT_CONFIG": str(tmp_path / "none.toml"),
            "ACDKIT_REDIS_URL": redis_url, "ACDKIT_ARI_URL": f"http://127.0.0.1:{free_port()}",
            "ACDKIT_ARI_PASSWORD": "x", "ACDKIT_NODE_ID": "n1", "ACDKIT_NODE_LEASE": "true",
            "ACDKIT_NODE_LEASE_TTL": "2", "ACDKIT_NODE_LEASE_MARGIN": "0.6",
            "ACDKIT_NODE_STANDBY_POLL": "0.2",
            "ACDKIT_KPIS_METRICS": "false"}


@pytest.fixture
def started(env: dict[str, str], tmp_path: Path) -> Iterator[list[Serve]]:
    (tmp_path / "none.toml").write_text("")
    made: list[Serve] = []
    yield made
    for serve in made:
        end_process(serve.proc, signal.SIGKILL, 5)


def serve(started: list[Serve], env: dict[str, str], tmp_path: Path) -> Serve:
    media = {"ACDKIT_REQUESTS_MEDIA_LISTEN": f"127.0.0.1:{free_port()}"}
    started.append(Serve({**env, **media}, tmp_path, f"serve{len(started) + 1}"))
    return started[-1]


def exit_code(serve: Serve, timeout: float) -> int:
    """How ``serve`` exited; its log when it does not within ``timeout`` s."""
    try:
        return serve.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve still running {timeout} s after the signal; its log:\n{serve.log()}")


def lease_row(env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "acdkit", "doctor", "--json"], env=env,
                          cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    rows = {row["check"]: row for row in json.loads(done.stdout)}
    return f"{rows['serve lease']['status']} {rows['serve lease']['detail']}"


def test_the_standby_takes_over_when_the_active_dies(env: dict[str, str], tmp_path: Path,
                                                     started: list[Serve],
                                                     redis_url: str) -> None:
    active = serve(started, env, tmp_path)
    active.wait_log("node n1, app acdkit: active (lease epoch 1)")
    active.wait_log("acdkit serve: app acdkit")  # then it goes on to ARI
    standby = serve(started, env, tmp_path)
    standby.wait_log("node n1, app acdkit: standby; the lease is held by")
    row = lease_row(env, tmp_path)
    assert row.startswith("OK node n1, app acdkit: active "), row
    assert f"pid {active.proc.pid} (epoch 1" in row and \
        f"standby: {os.uname().nodename} pid {standby.proc.pid}" in row, row
    assert "ARI connect" not in standby.log()  # a standby leaves ARI alone

    active.proc.kill()
    active.proc.wait(5)
    took = standby.wait_log("active (lease epoch 2)", timeout=10)
    assert took < 2 + 1, standby.log()  # within the lease's ttl and a poll, at most
    assert "is gone; taking over" in standby.log()  # proven dead here: no wait for the ttl
    standby.wait_log("acdkit serve: app acdkit")
    with redis.Redis.from_url(redis_url) as plain:
        assert plain.get(LEASE) is not None


def test_an_active_that_finds_its_lease_taken_stops_and_exits_75(
        env: dict[str, str], tmp_path: Path, started: list[Serve], redis_url: str) -> None:
    active = serve(started, env, tmp_path)
    active.wait_log("acdkit serve: app acdkit")
    with redis.Redis.from_url(redis_url) as plain:
        plain.set(LEASE, "another process")
    assert active.proc.wait(10) == 75, active.log()
    assert "another serve holds it; stopping" in active.log()
    with redis.Redis.from_url(redis_url) as plain:
        assert plain.get(LEASE) == b"another process"  # not released: it was not its own


def test_a_serve_stopped_by_sigterm_gives_the_lease_up(env: dict[str, str], tmp_path: Path,
                                                       started: list[Serve],
                                                       redis_url: str) -> None:
    active = serve(started, env, tmp_path)
    active.wait_log("acdkit serve: app acdkit")
    active.proc.send_signal(signal.SIGTERM)
    assert exit_code(active, 15) == 0, active.log()
    assert "lease released" in active.log()
    with redis.Redis.from_url(redis_url) as plain:
        assert plain.get(LEASE) is None
