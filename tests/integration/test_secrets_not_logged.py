"""Credentials come only from configuration or the environment and never reach output or
logs: `acdkit serve`, `acdkit agi`, `acdkit doctor` and a Redis command run at DEBUG level
with known secrets, against an ARI that refuses them and an AMI that refuses them (both
small fakes on free ports, never the lab), and their whole output is searched for them."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import pytest
from amifake import FakeAmi, fake_ami

ROOT = Path(__file__).resolve().parents[2]


class _Refuse(BaseHTTPRequestHandler):
    """ARI that answers every request (REST or the WebSocket upgrade) with 401."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        body = b'{"message": "Authentication required"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


class Fakes(NamedTuple):
    ari_port: int
    ami: FakeAmi


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    """An ARI and an AMI that refuse every login."""
    _Refuse.seen = []
    ari = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    threading.Thread(target=ari.serve_forever, daemon=True).start()
    try:
        with fake_ami(login_ok=False) as ami:
            yield Fakes(int(ari.server_address[1]), ami)
    finally:
        ari.shutdown()
        ari.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SECRETS = {name: f"{name}-{secrets.token_hex(8)}" for name in ("ari", "ami", "redis", "url")}


def _env(tmp_path: Path, ari_port: int, ami_port: int, redis_url: str) -> dict[str, str]:
    """The ARI password and AMI secret from the environment, the rest from a toml file."""
    config = tmp_path / "acdkit.toml"
    config.write_text(f'[ari]\nurl = "http://127.0.0.1:{ari_port}"\n'
                      f'[ami]\nhost = "127.0.0.1"\nport = {ami_port}\n'
                      f'[redis]\nurl = "{redis_url}"\n'
                      f'[agi]\nport = {_free_port()}\n'
                      f'[requests]\nmedia_listen = "127.0.0.1:{_free_port()}"\n'
                      f'media_url = "http://127.0.0.1:9"\n')
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ACDKIT_")}
    return {**clean, "ACDKIT_CONFIG": str(config), "ACDKIT_ARI_PASSWORD": SECRETS["ari"],
            "ACDKIT_AMI_SECRET": SECRETS["ami"]}


def _cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "acdkit", "-vv", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def _daemon(env: dict[str, str], cwd: Path, marker: str, *args: str) -> str:
    """Run a long-lived command until ``marker`` shows in its output (or 15 s), then
    SIGTERM it; its whole output."""
    lines: list[str] = []
    with subprocess.Popen([sys.executable, "-m", "acdkit", "-vv", *args], env=env, cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and marker not in "".join(lines) \
                and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)  # let the retries after the first refusal log too
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        reader.join(5)
    return "".join(lines)


def _leaks(output: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in output]


def test_doctor_never_prints_a_secret(tmp_path: Path, fakes: Fakes,
                                      redis_url: str) -> None:
    ari_port, ami_port = fakes.ari_port, fakes.ami.port
    pw_url = redis_url.replace("redis://", f"redis://:{SECRETS['redis']}@")
    env = {**_env(tmp_path, ari_port, ami_port, pw_url),
           "ACDKIT_ARI_URL": f"http://acdkit:{SECRETS['url']}@127.0.0.1:{ari_port}"}
    for args in (("doctor",), ("doctor", "--json")):
        output = _cli(env, tmp_path, *args)
        assert "wrong ARI username or password" in output, output
        assert "AMI refused user" in output and "ari.url holds a user" in output, output
        assert _leaks(output) == [], output
    assert any(SECRETS["ami"].encode() in login for login in fakes.ami.actions)  # it was used


def test_serve_never_logs_a_secret(tmp_path: Path, fakes: Fakes,
                                   redis_url: str) -> None:
    ari_port, ami_port = fakes.ari_port, fakes.ami.port
    env = {**_env(tmp_path, ari_port, ami_port, redis_url),
           "ACDKIT_ARI_URL": f"http://acdkit:{SECRETS['url']}@127.0.0.1:{ari_port}"}
    output = _daemon(env, tmp_path, "401", "serve")
    assert "acdkit serve: app" in output and "401" in output, output
    assert _Refuse.seen, "serve never reached the fake ARI"
    assert _leaks(output) == [], output


def test_agi_never_logs_the_ami_secret(tmp_path: Path, fakes: Fakes,
                                       redis_url: str) -> None:
    ari_port, ami_port = fakes.ari_port, fakes.ami.port
    output = _daemon(_env(tmp_path, ari_port, ami_port, redis_url), tmp_path,
                     "Authentication failed", "agi")
    assert fakes.ami.actions, "acdkit agi never logged in to the fake AMI: " + output
    assert _leaks(output) == [], output


def test_a_redis_password_never_shows_in_errors(tmp_path: Path, fakes: Fakes) -> None:
    ari_port, ami_port = fakes.ari_port, fakes.ami.port
    closed = f"redis://:{SECRETS['redis']}@127.0.0.1:{_free_port()}/0"
    output = _cli(_env(tmp_path, ari_port, ami_port, closed), tmp_path, "tasks", "list")
    assert "Redis at redis://:***@127.0.0.1" in output, output
    assert _leaks(output) == [], output


def test_an_agent_pin_is_stored_hashed_and_never_shown(tmp_path: Path, fakes: Fakes,
                                                       redis_url: str) -> None:
    import redis

    pin = str(secrets.randbelow(10**10)).zfill(12)
    env = _env(tmp_path, fakes.ari_port, fakes.ami.port, redis_url)
    output = _cli(env, tmp_path, "agents", "add", "a1", "--pin", pin, "--skill", "sales")
    assert "agent a1 saved" in output, output
    output += _cli(env, tmp_path, "agents", "list", "--json")
    assert '"a1"' in output and pin not in output, output
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        stored = " ".join(_values(client, key) for key in client.scan_iter())
    finally:
        client.close()
    assert "a1" in stored and pin not in stored


def _values(client: Any, key: str) -> str:
    """Everything stored under ``key``, as text, whatever its type."""
    kind = client.type(key)
    read = {"string": lambda: [client.get(key)], "hash": lambda: client.hgetall(key).items(),
            "list": lambda: client.lrange(key, 0, -1), "set": lambda: client.smembers(key),
            "zset": lambda: client.zrange(key, 0, -1),
            "stream": lambda: [f for _, f in client.xrange(key)]}[kind]
    return f"{key} {list(read())}"
