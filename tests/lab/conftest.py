"""The lab for tests: the real Asterisk (podman), a real redis-server, `acdkit serve` as a
process, and SIPp peers. The session brings the lab up once (or finds it up); each test gets
a clean Redis, a fresh `serve` and fresh SIPp peers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_CONFIG = ROOT / "asterisk" / "acdkit.toml"


def lab_settings() -> dict[str, dict[str, str]]:
    with LAB_CONFIG.open("rb") as fh:
        return tomllib.load(fh)


def ari_get(path: str, timeout: float = 3.0) -> tuple[int, object]:
    """A plain HTTP GET on the lab's ARI: (status, JSON body or None)."""
    import asyncio

    ari = lab_settings()["ari"]

    async def get() -> tuple[int, object]:
        headers = {"Authorization": aiohttp.encode_basic_auth(ari["username"], ari["password"])}
        async with aiohttp.ClientSession(headers=headers,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as http, \
                http.get(f"{ari['url']}/ari/{path}") as resp:
            body = await resp.json() if resp.content_type == "application/json" else None
            return resp.status, body

    try:
        return asyncio.run(get())
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0, None


def lab_is_up() -> bool:
    return ari_get("asterisk/info")[0] == 200


@pytest.fixture(scope="session")
def lab() -> Path:
    """The lab's Asterisk, up and ready (started with scripts/lab-up.sh when it is not)."""
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
        return {**os.environ, "ACDKIT_CONFIG": str(LAB_CONFIG), "ACDKIT_REDIS_URL": self.redis_url,
                **self.extra_env}

    def start(self, wait: float = 15.0) -> Serve:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "acdkit", "-v", "serve"],
                                     env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        self.wait_registered(wait)
        return self

    def wait_registered(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            if ari_get(f"applications/{lab_settings()['ari']['app']}")[0] == 200:
                return
            time.sleep(0.1)
        raise AssertionError(f"serve did not register the app in {wait}s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `acdkit ARGS` with the same settings as this serve."""
        done = subprocess.run([sys.executable, "-m", "acdkit", *args], env=self.env(),
                              capture_output=True, text=True, timeout=60)
        if check:
            assert done.returncode == 0, f"acdkit {' '.join(args)}: {done.stderr}{done.stdout}"
        return done

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def serve(lab: Path, redis_url: str, tmp_path: Path) -> Iterator[Serve]:
    """A fresh `acdkit serve` for one test (stopped after it; its log is printed on failure)."""
    server = Serve(redis_url, tmp_path / "serve.log")
    yield server
    server.stop()
    sys.stdout.write(f"\n--- serve log ---\n{server.log()[-6000:]}\n")
