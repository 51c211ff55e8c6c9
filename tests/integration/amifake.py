"""A tiny AMI server for doctor and secrets tests (never the lab's): it answers Login and
Command as told and keeps every action it was sent."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class FakeAmi(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, login_ok: bool, command_ok: bool) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.login_ok, self.command_ok = login_ok, command_ok
        self.actions: list[bytes] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(socketserver.BaseRequestHandler):
    server: FakeAmi

    def handle(self) -> None:
        self.request.settimeout(5)
        self.request.sendall(b"Asterisk Call Manager/9.0.0\r\n")
        data = b""
        try:
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                action, _, data = data.partition(b"\r\n\r\n")
                self.server.actions.append(action)
                self.request.sendall(self._reply(action))
        except OSError:
            return

    def _reply(self, action: bytes) -> bytes:
        lines = action.split(b"\r\n")
        ids = b"".join(line + b"\r\n" for line in lines if line.lower().startswith(b"actionid:"))
        kind = lines[0].split(b":", 1)[-1].strip().lower()
        ok = {b"login": self.server.login_ok, b"command": self.server.command_ok}.get(kind, False)
        if kind == b"login":
            message = b"Authentication accepted" if ok else b"Authentication failed"
        else:
            message = b"Command output follows\r\nOutput: up 1 second" if ok else \
                b"Permission denied"
        return b"Response: " + (b"Success" if ok else b"Error") + b"\r\n" + ids + \
            b"Message: " + message + b"\r\n\r\n"


@contextmanager
def fake_ami(*, login_ok: bool = True, command_ok: bool = False) -> Iterator[FakeAmi]:
    server = FakeAmi(login_ok, command_ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
