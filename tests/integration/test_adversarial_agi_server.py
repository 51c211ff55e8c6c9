"""acdkit's FastAGI server on a real socket, with a real Redis behind the routes, fed what an
outside FastAGI client can send: every refused request still leaves ACDKIT_STATUS=failed (so
the dialplan goes on to acdkit-failure), control characters from the caller are never
stored or logged raw, and voice-request is refused when voice requests are off."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from poolkit import StepClock

from acdkit import dialplan_vars as dv
from acdkit.agi.context import RouteContext
from acdkit.agi.routes import ROUTES, handlers, served_routes
from acdkit.agi.server import AgiServer
from acdkit.config import Settings
from acdkit.core.numbers import NumberPolicy
from acdkit.core.text import has_control
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore
from acdkit.testing import FakeJobQueue

HEADER = (Path(__file__).parents[1] / "unit" / "fixtures" / "agi" /
          "request-callback-offer.txt").read_bytes()
FAILED = f"SET VARIABLE {dv.STATUS} {dv.STATUS_FAILED}"
Answer = Callable[[str], list[str]]


async def converse(port: int, header: bytes, answer: Answer) -> list[str]:
    """Play Asterisk: send ``header``, answer each command; the commands received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    commands: list[str] = []
    while line := (await asyncio.wait_for(reader.readline(), 5)).decode():
        commands.append(line.rstrip("\n"))
        writer.write("".join(f"{reply}\n" for reply in answer(commands[-1])).encode())
        await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return commands


def ok(line: str) -> list[str]:
    return ["200 result=1"]


def presses(keys: dict[str, str]) -> Answer:
    def answer(line: str) -> list[str]:
        if line.startswith("GET VARIABLE"):
            return ["200 result=0"]
        for prompt, key in keys.items():
            if prompt in line:
                return [f"200 result={ord(key)} endpos=800"]
        return ["200 result=0 endpos=8000"]
    return answer


def with_line(name: str, value: str) -> bytes:
    lines = [line for line in HEADER.decode().split("\n")
             if line and not line.startswith(f"agi_{name}:")]
    return ("\n".join([*lines, f"agi_{name}: {value}"]) + "\n\n").encode()


@pytest.fixture
async def ctx(pool: Pool, clock: StepClock) -> RouteContext:
    policy = NumberPolicy(default_region="US", calling_hours=NumberPolicy().calling_hours)
    made = RouteContext(Settings(), pool, CallbackStore(pool), policy, clock, RatingStore(pool))
    made.jobs = FakeJobQueue()

    async def fetch(name: str) -> bytes | None:
        return b"RIFF" + b"\0" * 2000

    made.fetch = fetch
    return made


@pytest.fixture
async def server(ctx: RouteContext) -> AsyncIterator[AgiServer]:
    made = AgiServer(handlers(ctx, served_routes(ctx.settings)), "127.0.0.1", 0,
                     header_timeout=0.5)
    made.port = await made.start()
    try:
        yield made
    finally:
        await made.close()


@pytest.mark.parametrize("header", [
    HEADER.replace(b"callback-offer?queue=sales", b"Callback-Offer?queue=sales"),
    HEADER.replace(b"callback-offer?queue=sales", b"../../etc/passwd"),
    HEADER.replace(b"queue=sales", b"queue=sa%0D%0Ales"),
    HEADER.replace(b"queue=sales", b"queue=sales&queue=support"),
    HEADER.replace(b"queue=sales", b"queue=sa%1B%5B2Jles"),
    with_line("arg_1", "x\ry"),
    with_line("arg_1", "\u202eevil"),
], ids=["bad-name", "path", "crlf-param", "repeated-param", "escape-param", "cr-arg",
        "bidi-arg"])
async def test_a_refused_request_leaves_status_failed(server: AgiServer, pool: Pool,
                                                      header: bytes) -> None:
    assert await converse(server.port, header, ok) == [FAILED]
    assert await pool.list_tasks() == []
    assert server.served == 0


async def test_a_refused_request_from_a_silent_peer_is_dropped_after_the_header_timeout(
        server: AgiServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(HEADER.replace(b"callback-offer", b"Nope"))
    assert (await asyncio.wait_for(reader.readline(), 2)).decode().rstrip() == FAILED
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed without a reply
    writer.close()


async def test_voice_request_is_refused_when_voice_requests_are_off(
        server: AgiServer, ctx: RouteContext, pool: Pool) -> None:
    assert not ctx.settings.overflow.voice_requests
    header = HEADER.replace(b"callback-offer?queue=sales", b"voice-request?queue=sales")
    commands = await converse(server.port, header, presses({"cb-number-confirm": "1"}))
    assert commands == [FAILED]
    assert await pool.list_tasks() == []
    assert ctx.jobs.jobs == []  # type: ignore[union-attr]


def test_voice_request_is_served_when_voice_requests_are_on() -> None:
    on = Settings()
    on = replace(on, overflow=replace(on.overflow, voice_requests=True))
    assert served_routes(on) == ROUTES
    assert [r.__name__ for r in served_routes(Settings())] == [
        r.__name__ for r in ROUTES if r.__name__ != "voice_request"]


async def test_control_characters_from_the_caller_are_stored_and_logged_only_scrubbed(
        server: AgiServer, pool: Pool, caplog: pytest.LogCaptureFixture) -> None:
    header = with_line("channel", "PJSIP/caller-0\r\x1b[2J\u202e") \
        .replace(b"agi_calleridname: unknown", b"agi_calleridname: Bob\x07\x1b]0;x\x07")
    caplog.set_level(logging.DEBUG, logger="acdkit")
    commands = await converse(server.port, header, presses(
        {"acdkit/overflow-offer": "1", "acdkit/cb-number-confirm": "1"}))
    assert commands[-1] == f"SET VARIABLE {dv.STATUS} {dv.STATUS_STORED}"
    task = await pool.get_task(commands[-2].split()[-1])
    assert task is not None
    assert task.attributes["channel"].startswith("PJSIP/caller-0\ufffd")
    assert not any(has_control(str(v)) for v in task.attributes.values())
    logged = [r.getMessage() for r in caplog.records]
    assert any("PJSIP/caller-0" in m for m in logged)
    assert not [m for m in logged if has_control(m.replace("\n", ""))]


async def test_a_variable_with_control_characters_comes_back_scrubbed(
        server: AgiServer, ctx: RouteContext) -> None:
    """The survey reads MEMBERNAME: a value with a CR is never taken as a member name."""
    def answer(line: str) -> list[str]:
        if line == "GET VARIABLE MEMBERNAME":
            return ["200 result=1 (agent2\x1b[2J)"]
        return ["200 result=0 endpos=10"]

    header = HEADER.replace(b"callback-offer?queue=sales", b"survey?queue=sales")
    commands = await converse(server.port, header, answer)
    assert commands[-1] == f"SET VARIABLE {dv.STATUS} {dv.STATUS_NONE}"
    assert (await ctx.ratings.agent_summary("agent2")).ratings == 0
