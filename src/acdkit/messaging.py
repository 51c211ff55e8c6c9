"""Text messages to customers: the ``Messenger`` port's implementations (docs/self-service.md).

``AriMessenger`` asks Asterisk to send a SIP MESSAGE: ``PUT /ari/endpoints/sendMessage``
with ``to`` = ``pjsip:<endpoint>/sip:<number>@<host>`` (res_pjsip_messaging picks the
endpoint, so the trunk's outbound proxy and auth apply), ``from`` and ``body``. Measured on
Asterisk 22.10.1: ARI answers 202 as soon as the request is built, before the far end
answers, and res_pjsip_messaging drops that answer: a far end that refuses (405) is never
reported. An error status from ARI counts as refused. So ``sent`` means "handed to
Asterisk" (tests/lab/test_self_service.py keeps the measurement).

``SipMessenger`` sends the MESSAGE itself (UDP, one non-INVITE transaction, RFC 3261
timer E retransmissions) straight to the trunk's address and reads the final answer:
2xx = sent, anything else (405 Method Not Allowed, 404, a timeout) = refused, so the reply
goes by a call. Use it where the trunk (an SBC, a carrier's SIP MESSAGE gateway) is reached
directly without registration or digest auth.

``FileMessenger`` appends each message as a JSON line to a file (tests, dry runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from acdkit.config import Settings
from acdkit.core.errors import ConfigError, InvalidInput
from acdkit.ports import MessageResult, Messenger

log = logging.getLogger(__name__)

MAX_BODY = 1000  # res_pjsip_messaging's buffer is 1024 bytes
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_SIP_URI = re.compile(r"sip:(?P<user>[^@;>]+)@(?P<host>[0-9A-Za-z.-]+)(:(?P<port>[0-9]{1,5}))?")


def _checked(number: str, text: str) -> tuple[str, str]:
    if not _E164.fullmatch(number):
        raise InvalidInput(f"{number!r} is not an E.164 number")
    body = text.strip()
    if not body or len(body.encode()) > MAX_BODY:
        raise InvalidInput(f"a message holds 1 to {MAX_BODY} bytes of text")
    return number[1:], body


class FileMessenger:
    """Each message as one JSON line ``{"to", "text"}`` in ``path``: always sent."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    async def send(self, number: str, text: str) -> MessageResult:
        _checked(number, text)
        line = json.dumps({"to": number, "text": text.strip()}) + "\n"
        await asyncio.to_thread(self._append, line)
        return MessageResult(True, f"written to {self.path.name}")

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(line)


class AriMessenger:
    """SIP MESSAGE through Asterisk (ARI ``endpoints/sendMessage``)."""

    name = "ari"

    def __init__(self, url: str, username: str, password: str, uri: str, sender: str,
                 timeout: float = 5.0) -> None:
        if "{number}" not in uri or not uri.startswith("pjsip:"):
            raise ConfigError("messaging.uri", "for ari: pjsip:<endpoint>/sip:{number}@<host>")
        self.url, self.uri, self.sender = url.rstrip("/"), uri, sender
        self._auth = aiohttp.BasicAuth(username, password)
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, number: str, text: str) -> MessageResult:
        digits, body = _checked(number, text)
        params = {"to": self.uri.format(number=digits), "from": self.sender, "body": body}
        try:
            async with aiohttp.ClientSession(auth=self._auth, timeout=self._timeout) as http, \
                    http.put(f"{self.url}/ari/endpoints/sendMessage", params=params) as resp:
                why = (await resp.text())[:200]
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            return MessageResult(False, f"ARI unreachable: {exc!r}"[:200])
        if status in (200, 202, 204):
            return MessageResult(True, f"ARI {status}: handed to Asterisk")
        return MessageResult(False, f"ARI {status}: {why}")


class SipMessenger:
    """A SIP MESSAGE sent straight to the trunk; the far end's final answer decides."""

    name = "sip"

    def __init__(self, uri: str, sender: str, timeout: float = 8.0,
                 local_ip: str = "127.0.0.1") -> None:
        if "{number}" not in uri or not _SIP_URI.fullmatch(uri.format(number="1")):
            raise ConfigError("messaging.uri", "for sip: sip:{number}@<host>[:<port>]")
        self.uri, self.sender, self.timeout, self.local_ip = uri, sender, timeout, local_ip

    async def send(self, number: str, text: str) -> MessageResult:
        digits, body = _checked(number, text)
        target = self.uri.format(number=digits)
        match = _SIP_URI.fullmatch(target)
        assert match is not None
        address = (match["host"], int(match["port"] or 5060))
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Answers(answer), local_addr=(self.local_ip, 0), remote_addr=address)
        try:
            port = transport.get_extra_info("sockname")[1]
            request = self._request(target, body, port)
            status = await self._transact(transport, request, answer)
        finally:
            transport.close()
        if status is None:
            return MessageResult(False, f"no answer in {self.timeout:g} s")
        code = int(status.split(" ")[1]) if status.count(" ") >= 1 else 0
        return MessageResult(200 <= code < 300, status.removeprefix("SIP/2.0 ")[:100])

    async def _transact(self, transport: asyncio.DatagramTransport, request: bytes,
                        answer: asyncio.Future[str]) -> str | None:
        """Send, retransmit every 0.5, 1, 2, 4, 4... s until a final answer or timeout."""
        interval, left = 0.5, self.timeout
        while left > 0:
            transport.sendto(request)
            wait = min(interval, left)
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(answer), wait)
            left -= wait
            interval = min(interval * 2, 4.0)
        return None

    def _request(self, target: str, body: str, port: int) -> bytes:
        data = body.encode()
        tag, branch = secrets.token_hex(6), "z9hG4bK" + secrets.token_hex(8)
        sender = self.sender or f"sip:acdkit@{self.local_ip}"
        lines = [f"MESSAGE {target} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.local_ip}:{port};branch={branch};rport",
                 "Max-Forwards: 70", f"From: <{sender}>;tag={tag}", f"To: <{target}>",
                 f"Call-ID: {secrets.token_hex(12)}@{self.local_ip}", "CSeq: 1 MESSAGE",
                 "Content-Type: text/plain;charset=UTF-8", f"Content-Length: {len(data)}",
                 "", ""]
        return "\r\n".join(lines).encode() + data


class _Answers(asyncio.DatagramProtocol):
    """Keeps the first final answer's status line (1xx are provisional)."""

    def __init__(self, answer: asyncio.Future[str]) -> None:
        self.answer = answer

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        line = data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        if line.startswith("SIP/2.0 ") and not line.startswith("SIP/2.0 1") \
                and not self.answer.done():
            self.answer.set_result(line)


def messenger_for(settings: Settings) -> Messenger | None:
    """The messenger ``[messaging]`` configures, or None when messages are off."""
    m = settings.messaging
    sender = m.sender or (f"sip:{settings.center.caller_id.lstrip('+')}@127.0.0.1"
                          if settings.center.caller_id else "")
    if m.transport == "":
        return None
    if m.transport == "file":
        if not m.file:
            raise ConfigError("messaging.file", "the file transport needs a path")
        return FileMessenger(Path(m.file))
    if m.transport == "ari":
        a = settings.ari
        return AriMessenger(a.url, a.username, a.password.reveal(), m.uri, sender,
                            timeout=a.request_timeout)
    if m.transport == "sip":
        host = urlsplit(settings.ari.url).hostname or "127.0.0.1"
        return SipMessenger(m.uri, sender, m.timeout, local_ip=_local_ip(host))
    raise ConfigError("messaging.transport", f"{m.transport!r}: expected ari, sip or file")


def _local_ip(host: str) -> str:
    """Send from loopback when Asterisk is local (the lab), else any address."""
    return "127.0.0.1" if host in ("127.0.0.1", "localhost") else "0.0.0.0"
