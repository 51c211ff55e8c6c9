"""The lab for tests: the real Asterisk (podman), a real redis-server, `acdkit serve` as a
process, and SIPp peers. The session brings the lab up once (or finds it up); each test gets
a clean Redis, a fresh `serve` and fresh SIPp peers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.conftest import end_process

from acdkit.labkit.sipp import Peer, agent_peer

ROOT = Path(__file__).resolve().parents[2]
LAB_CONFIG = ROOT / "asterisk" / "acdkit.toml"
REGISTERED = "ARI app {app} registered"  # what serve logs each time its app is (re)connected


def lab_settings() -> dict[str, dict[str, str]]:
    with LAB_CONFIG.open("rb") as fh:
        return tomllib.load(fh)


def ari_get(path: str, timeout: float = 3.0) -> tuple[int, object]:
    """A plain HTTP GET on the lab's ARI: (status, JSON body or None)."""
    return ari_call("GET", path, timeout)


def ari_call(method: str, path: str, timeout: float = 3.0) -> tuple[int, object]:
    """A plain HTTP request on the lab's ARI: (status, JSON body or None); (0, None) when
    ARI does not answer."""
    import asyncio

    ari = lab_settings()["ari"]

    async def call() -> tuple[int, object]:
        headers = {"Authorization": aiohttp.encode_basic_auth(ari["username"], ari["password"])}
        async with aiohttp.ClientSession(headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as http, \
                http.request(method, f"{ari['url']}/ari/{path}") as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body

    try:
        return asyncio.run(call())
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0, None


def lab_channels() -> list[dict[str, object]]:
    """Every channel the lab's Asterisk has now (ARI sees them all, in any app or none)."""
    status, body = ari_get("channels")
    return list(body) if status == 200 and isinstance(body, list) else []


def hang_up_all(wait: float = 5.0) -> list[str]:
    """Hang up every channel left on the lab's Asterisk and wait until they are gone; return
    the names of those that were there. Tests call it before they stop their SIPp peers, so
    Asterisk's BYEs are answered instead of retransmitted to the next test's peer."""
    left = lab_channels()
    for channel in left:
        ari_call("DELETE", f"channels/{channel['id']}")
    deadline = time.monotonic() + wait
    while lab_channels() and time.monotonic() < deadline:
        time.sleep(0.05)
    return [str(c.get("name")) for c in left]


def _hang_up_left() -> None:
    """``hang_up_all`` from sync and async tests alike (it runs its own event loop)."""
    worker = threading.Thread(target=hang_up_all)
    worker.start()
    worker.join()


Peer.before_exit.append(_hang_up_left)


def lab_is_up() -> bool:
    return ari_get("asterisk/info")[0] == 200


@pytest.fixture(scope="session")
def lab() -> Path:
    """The lab's Asterisk, up and ready (started with scripts/lab-up.sh when it is not)."""
    return _lab_up()


def _lab_up() -> Path:
    if not lab_is_up():
        subprocess.run(["bash", "-c", "source scripts/podman-env.sh && bash scripts/lab-up.sh"],
                       cwd=ROOT, check=True)
    assert lab_is_up(), "the lab's ARI does not answer after lab-up"
    return ROOT


class Serve:
    """`acdkit serve` as a real process against the lab and the test Redis."""

    def __init__(self, redis_url: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.redis_url = redis_url
        self.log_path = log_path
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        # PYTHONPATH: a priority hook in tests/ (tests.lab.hooks) must be importable by serve.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        return {**os.environ, "PYTHONPATH": path, "ACDKIT_CONFIG": str(LAB_CONFIG),
                "ACDKIT_REDIS_URL": self.redis_url, **self.extra_env}

    def start(self, wait: float = 15.0) -> Serve:
        before = self.registrations()
        self.launch()
        self.wait_registered(wait, more_than=before)
        return self

    def launch(self, prefix: tuple[str, ...] = ()) -> None:
        """Start serve (under the command ``prefix``, if any) without waiting for its ARI
        app: a standby serve does not register it until it takes the node over."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "acdkit", "-v", "serve"],
                                         env=self.env(), cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT)

    def registrations(self) -> int:
        """How many times serve has logged its ARI app as registered so far."""
        return self.log().count(REGISTERED.format(app=lab_settings()["ari"]["app"]))

    def wait_registered(self, wait: float, more_than: int = 0) -> float:
        """Wait until serve logs its app registered (more than ``more_than`` times in all);
        return the seconds it took. ARI's ``GET applications/NAME`` is no sign: Asterisk keeps
        an app it has seen after its WebSocket is gone."""
        started = time.monotonic()
        deadline = started + wait
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            if self.registrations() > more_than:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"serve did not register the app in {wait}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        end_process(self.proc, sig, wait=10)
        self.proc = None

    def cli(self, *args: str, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `acdkit ARGS` with the same settings as this serve (and ``env`` on top)."""
        done = subprocess.run([sys.executable, "-m", "acdkit", *args],
                              env={**self.env(), **(env or {})}, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, f"acdkit {' '.join(args)}: {done.stderr}{done.stdout}"
        return done

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Worker:
    """`acdkit worker` as a process with the settings of ``serve``."""

    def __init__(self, serve: Serve, log: Path) -> None:
        self.serve, self.log_path = serve, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "acdkit", "-v", "worker"],
                                         env=self.serve.env(), cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        end_process(self.proc, signal.SIGKILL, wait=10)
        self.proc = None

    def stop(self) -> None:
        end_process(self.proc, signal.SIGTERM, wait=15)
        self.proc = None


def busy_agent_center(serve: Serve, tmp_path: Path,
                      env: dict[str, str]) -> Iterator[tuple[Serve, Worker]]:
    """For a fixture: serve (with ``env``) and a worker; agent 1 (Alice, sales) signed in at
    PJSIP/agent1 and paused (busy), so work waits until the test resumes it."""
    serve.extra_env.update(env)
    serve.cli("agents", "add", "1", "--name", "Alice", "--pin", "1234", "--skill", "sales")
    serve.cli("agents", "login", "1", "--reach", "PJSIP/agent1")
    serve.cli("agents", "pause", "1")
    serve.start()
    worker = Worker(serve, tmp_path / "worker.log").start()
    yield serve, worker
    worker.stop()
    sys.stdout.write(f"\n--- worker log ---\n{worker.log_path.read_text()[-4000:]}\n")


@pytest.fixture
def serve(lab: Path, redis_url: str, tmp_path: Path) -> Iterator[Serve]:
    """A fresh `acdkit serve` for one test (stopped after it; its log is printed on failure)."""
    server = Serve(redis_url, tmp_path / "serve.log")
    yield server
    server.stop()
    left = hang_up_all()  # a test that failed half-way must not leave calls to the next one
    sys.stdout.write(f"\n--- serve log ---\n{server.log()[-6000:]}\n"
                     + (f"--- channels left over and hung up: {left}\n" if left else ""))


@pytest.fixture
def phones(serve: Serve, tmp_path: Path) -> Iterator[Callable[..., Peer]]:
    """Start the agents' SIPp phones: ``phones(**behaviour)`` is a started ``agent_peer``.

    At the end of the test every call still up is hung up while the phones still answer
    (then they stop, then serve): no BYE or INVITE of this test is retransmitted to the next
    test's phones on the same address.
    """
    started: list[Peer] = []

    def start(**behaviour: Any) -> Peer:
        phone = agent_peer(workdir=tmp_path / f"agents-{len(started) + 1}", **behaviour)
        started.append(phone.start())
        return phone

    yield start
    hang_up_all()
    for phone in started:
        phone.stop()
