"""The pages in a real browser for lab tests: `acdkit web` as a process next to `serve`, and
Debian's Chromium driven by Playwright (never `playwright install`: it downloads a browser).

Each test saves screenshots under tests/artifacts/ (not committed)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Page
from tests.conftest import end_process
from tests.lab.conftest import ROOT, Serve

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebProcess:
    """`acdkit web` with the settings of ``serve`` on a free port."""

    def __init__(self, serve: Serve, log: Path) -> None:
        self.serve, self.log_path = serve, log
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: float = 15.0) -> WebProcess:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "acdkit", "-v", "web", "--listen",
                 f"127.0.0.1:{self.port}"], env=self.serve.env(), cwd=ROOT, stdout=out,
                stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            try:
                with urllib.request.urlopen(f"{self.url}/wallboard", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"acdkit web did not answer in {wait}s")

    def stop(self) -> None:
        end_process(self.proc, signal.SIGTERM, wait=10)
        self.proc = None


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base: str, who: str, secret: str, *, role: str = "agent",
            phone: str = "") -> None:
    page.goto(f"{base}/{role}")
    page.fill("input[name=who]", who)
    page.fill("input[name=secret]", secret)
    if phone:
        page.fill("input[name=phone]", phone)
    page.click("button[type=submit]")


@dataclass
class Traffic:
    """Bytes the browser received (Chrome DevTools Protocol): every response body and
    header as sent on the wire, and the server-sent events of the page's stream."""

    finished: dict[str, int] = field(default_factory=dict)  # request id → bytes
    stream_id: str = ""
    stream_bytes: int = 0
    messages: int = 0

    def watch(self, page: Page) -> Traffic:
        cdp = page.context.new_cdp_session(page)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.loadingFinished", self._finished)
        cdp.on("Network.eventSourceMessageReceived", self._message)
        cdp.send("Network.enable")
        return self

    def _response(self, event: dict[str, Any]) -> None:
        if "event-stream" in event["response"].get("mimeType", ""):
            self.stream_id = event["requestId"]

    def _finished(self, event: dict[str, Any]) -> None:
        self.finished[event["requestId"]] = int(event["encodedDataLength"])

    def _message(self, event: dict[str, Any]) -> None:
        # DevTools reports an EventSource's messages, not its bytes: count them as sent
        # (aiohttp-sse writes "event: NAME", one "data: " line per line, CRLF endings).
        self.messages += 1
        lines = str(event["data"]).split("\n")
        self.stream_bytes += len(f"event: {event['eventName']}\r\n".encode()) + sum(
            len(f"data: {line}\r\n".encode()) for line in lines) + 2
