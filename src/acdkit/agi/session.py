"""One FastAGI conversation: send a command, read its reply, and the few commands the routes
use (prompts with a key, digits, variables, recording).

Media are the core's URIs (``core/dtmf.py`` read-back): ``sound:acdkit/cb-booked`` plays with
STREAM FILE, ``digits:555`` with SAY DIGITS, ``number:14`` with SAY NUMBER, so the Stasis
flows and the AGI routes read back times and numbers the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from acdkit.agi import protocol
from acdkit.agi.protocol import AgiProtocolError, AgiResponse
from acdkit.core.errors import InvalidInput
from acdkit.core.text import scrub

log = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#"
REPLY_TIMEOUT = 10.0  # seconds for a command that does not wait for the caller
MAX_LINE = 8_192


class ChannelHungUp(Exception):
    """The caller hung up (``HANGUP``, ``511`` or ``result=-1``): the route just stops."""


class CommandFailed(AgiProtocolError):
    """Asterisk refused a command (``510`` unknown, ``520`` bad usage)."""


class AgiChannel:
    """Commands on one FastAGI connection. Not safe for concurrent use (AGI is one command
    at a time per channel)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 transcript: list[str] | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.hung_up = False
        self.transcript = transcript  # when a list: every line sent (">") and read ("<")

    async def command(self, name: str, *args: str | int,
                      wait: float = REPLY_TIMEOUT) -> AgiResponse:
        """Send one command and return its reply; ``wait`` seconds at most for it.

        Raises ``ChannelHungUp`` for a dead channel, ``CommandFailed`` for 510/520,
        ``BadResponse`` for a line that is no reply, ``TimeoutError``."""
        line = protocol.format_command(name, *args)
        self._note(">", line.decode().rstrip("\n"))
        self.writer.write(line)
        await self.writer.drain()
        async with asyncio.timeout(wait):  # not wait_for: docs/architecture.md §7
            reply = await self._reply()
        if reply.code == 511 or (reply.code == 200 and reply.result == -1):
            self.hung_up = True
            raise ChannelHungUp(reply.text)
        if reply.code != 200:
            raise CommandFailed(f"AGI {name}: {reply.text}")
        return reply

    async def _reply(self) -> AgiResponse:
        while True:
            line = await self._line()
            if line == protocol.HANGUP_LINE:
                self.hung_up = True  # the reply to the command still follows
                continue
            if protocol.is_continuation(line):
                while not protocol.is_final_520(line):
                    line = await self._line()
            return protocol.parse_response(line)

    async def _line(self) -> str:
        raw = await self.reader.readline()
        if not raw:
            self.hung_up = True
            raise ChannelHungUp("FastAGI connection closed")
        if len(raw) > MAX_LINE:
            raise protocol.BadResponse(f"AGI reply line of {len(raw)} bytes")
        line = scrub(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._note("<", line)
        return line

    def _note(self, direction: str, line: str) -> None:
        if self.transcript is not None:
            self.transcript.append(f"{direction} {line}")

    # -- the commands the routes use ---------------------------------------------------------

    async def answer(self) -> None:
        await self.command("ANSWER")

    async def set_variable(self, name: str, value: str, *, wait: float = REPLY_TIMEOUT) -> None:
        await self.command("SET VARIABLE", name, value, wait=wait)

    async def get_variable(self, name: str) -> str | None:
        """The channel variable's value, or None when it is not set; a control character in
        it (a caller's CALLERID(name), say) comes back as U+FFFD, as every reply line does."""
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.result == 1 else None

    async def play(self, media: Sequence[str], keys: str = "") -> str | None:
        """Play ``media`` in order; with ``keys``, a key of them stops it and is returned."""
        for uri in media:
            key = await self._play_one(uri, keys)
            if key is not None:
                return key
        return None

    async def _play_one(self, uri: str, keys: str) -> str | None:
        kind, _, what = uri.partition(":")
        escape = keys  # empty: sent as "" (no key stops it)
        if kind == "sound":
            reply = await self.command("STREAM FILE", what, escape, wait=600)
        elif kind == "digits" and what.isdigit():
            reply = await self.command("SAY DIGITS", what, escape, wait=120)
        elif kind == "number" and what.lstrip("-").isdigit():
            reply = await self.command("SAY NUMBER", what, escape, wait=120)
        else:
            raise InvalidInput(f"media {uri!r} cannot be played over AGI")
        return reply.digit

    async def wait_key(self, timeout: float) -> str | None:
        """The next key within ``timeout`` seconds, or None."""
        reply = await self.command("WAIT FOR DIGIT", int(timeout * 1000), wait=timeout + 10)
        return reply.digit

    async def ask(self, media: Sequence[str], timeout: float, keys: str = ALL_KEYS) -> str | None:
        """Play ``media`` (a key stops it), then wait up to ``timeout`` seconds for one key."""
        key = await self.play(media, keys)
        return key if key is not None else await self.wait_key(timeout)

    async def read_digits(self, prompt: str, max_digits: int, timeout: float) -> str:
        """GET DATA: play ``prompt`` (a sound name), read up to ``max_digits`` keys, ``#``
        ends early; ``timeout`` seconds after the last key. Returns the digits (maybe '')."""
        reply = await self.command("GET DATA", prompt, int(timeout * 1000), max_digits,
                                   wait=timeout * (max_digits + 1) + 120)
        digits = reply.raw_result
        return "" if digits in ("", "0") and reply.data == "timeout" else digits

    async def record(self, path: str, fmt: str, max_seconds: float, silence: int = 0) -> str:
        """RECORD FILE with a beep; ``#`` ends it. Returns how it ended (``dtmf``, ``timeout``,
        ``hangup``...)."""
        args: list[str | int] = [path, fmt, "#", int(max_seconds * 1000), 0, "BEEP"]
        if silence:
            args.append(f"s={silence}")
        try:
            reply = await self.command("RECORD FILE", *args, wait=max_seconds + 30)
        except ChannelHungUp:
            return "hangup"
        return reply.data or "dtmf"
