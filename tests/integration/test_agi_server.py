"""acdkit's FastAGI server on a real socket, with a scripted Asterisk at the other end and a
real Redis behind the routes: dropped and stalled connections never stall the loop
(docs/architecture.md §7: what freezes panoramisk 1.4's FastAGI), a route that fails leaves
ACDKIT_STATUS=failed, and the callback-offer route books a dialplan-mode callback."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from poolkit import StepClock

from acdkit import dialplan_vars as dv
from acdkit.agi import routes
from acdkit.agi.context import RouteContext
from acdkit.agi.routes import handlers
from acdkit.agi.server import AgiServer
from acdkit.agi.session import AgiChannel
from acdkit.ami.watcher import Watcher
from acdkit.config import Settings
from acdkit.core.members import MemberBoard
from acdkit.core.numbers import NumberPolicy
from acdkit.core.ratings import Interaction
from acdkit.core.tasks import TaskKind, TaskState
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore
from acdkit.testing import FakeJobQueue

HEADER = (Path(__file__).parents[1] / "unit" / "fixtures" / "agi" /
          "request-callback-offer.txt").read_bytes()
Answer = Callable[[str], list[str]]


async def converse(port: int, answer: Answer, header: bytes = HEADER) -> list[str]:
    """Play Asterisk: send ``header``, answer each command with ``answer(line)``; return the
    commands received until acdkit closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(header)
    commands: list[str] = []
    while line := (await asyncio.wait_for(reader.readline(), 5)).decode():
        commands.append(line.rstrip("\n"))
        writer.write("".join(f"{reply}\n" for reply in answer(commands[-1])).encode())
        await writer.drain()
    await closed(writer)
    return commands


async def closed(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


@pytest.fixture
async def ctx(pool: Pool, clock: StepClock) -> RouteContext:
    policy = NumberPolicy(default_region="US", calling_hours=NumberPolicy().calling_hours)
    return RouteContext(Settings(), pool, CallbackStore(pool), policy, clock, RatingStore(pool))


@pytest.fixture
async def server(ctx: RouteContext) -> AsyncIterator[AgiServer]:
    async def boom(agi: AgiChannel, request: object) -> None:
        raise RuntimeError("a bug in a route")

    made = AgiServer({**handlers(ctx), "boom": boom}, "127.0.0.1", 0, header_timeout=0.3)
    made.port = await made.start()
    try:
        yield made
    finally:
        await made.close()


async def test_dropped_partial_and_stalled_connections_do_not_stall_the_loop(
        server: AgiServer) -> None:
    cpu = time.process_time()
    for _ in range(50):  # connect and close at once (a port scan)
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await closed(writer)
    for _ in range(20):  # half a header, then close
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(HEADER[:40])
        await writer.drain()
        await closed(writer)
    stalled = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(5)]
    for _, writer in stalled:
        writer.write(b"agi_network: yes\n")
    _, huge = await asyncio.open_connection("127.0.0.1", server.port)
    huge.write(b"agi_x: " + b"y" * 20_000)
    # The loop stays responsive meanwhile: a 50 ms sleep takes about 50 ms.
    started = time.monotonic()
    await asyncio.sleep(0.05)
    assert time.monotonic() - started < 0.2
    await asyncio.sleep(0.6)  # past the header timeout: the stalled ones are dropped
    for reader, writer in stalled:
        assert await asyncio.wait_for(reader.read(), 1) == b""  # closed by acdkit
        await closed(writer)
    await closed(huge)
    assert server.dropped == 76 and server.served == 0
    assert time.process_time() - cpu < 1.5, "the loop spun while connections were dropped"
    # ...and a real request is still served.
    commands = await converse(server.port, lambda line: ["200 result=1"],
                              HEADER.replace(b"callback-offer?queue=sales", b"boom"))
    assert commands == [f"SET VARIABLE {dv.STATUS} failed"]


async def test_an_unknown_route_and_a_bad_queue_leave_status_failed(server: AgiServer) -> None:
    unknown = await converse(server.port, lambda line: ["200 result=1"],
                             HEADER.replace(b"callback-offer?queue=sales", b"nope"))
    assert unknown == [f"SET VARIABLE {dv.STATUS} failed"]
    bad_queue = await converse(server.port, lambda line: ["200 result=1"],
                               HEADER.replace(b"queue=sales", b"queue=a%20b"))
    assert bad_queue == [f"SET VARIABLE {dv.STATUS} failed"]


def caller_presses(keys: dict[str, str]) -> Answer:
    """An Asterisk whose caller presses ``keys[prompt]`` while that prompt plays."""
    def answer(line: str) -> list[str]:
        if line.startswith("GET VARIABLE"):
            return ["200 result=0"]
        for prompt, key in keys.items():
            if prompt in line:
                return [f"200 result={ord(key)} endpos=800"]
        return ["200 result=0 endpos=8000"]
    return answer


async def test_callback_offer_books_a_dialplan_mode_callback(server: AgiServer,
                                                             pool: Pool) -> None:
    commands = await converse(server.port, caller_presses(
        {"acdkit/overflow-offer": "1", "acdkit/cb-number-confirm": "1"}))
    assert commands[:2] == ["GET VARIABLE ACDKIT_SINCE",
                            "STREAM FILE acdkit/overflow-offer 0123456789*#"]
    assert "SAY DIGITS 212 0123456789*#" in commands  # the number read back in groups
    assert commands[-1] == f"SET VARIABLE {dv.STATUS} {dv.STATUS_STORED}"
    task_id = commands[-2].split()[-1]
    assert commands[-2] == f"SET VARIABLE {dv.TASK_ID} {task_id}"
    task = await pool.get_task(task_id)
    assert task is not None
    assert (task.kind, task.state, task.skill, task.number) == (
        TaskKind.CALLBACK, TaskState.QUEUED, "queue:sales", "+12125550142")
    assert dict(task.required) == {dv.MODE_ATTRIBUTE: dv.MODE_DIALPLAN}
    assert task.attributes["queue"] == "sales"


async def test_an_anonymous_caller_cannot_book_past_the_caller_limit(server: AgiServer,
                                                                     pool: Pool) -> None:
    """A withheld caller ID (in any of its spellings) on one trunk, 8 offers for 8 keyed
    numbers: the per-caller limit (5 an hour) holds as for an identified caller."""
    statuses = []
    withheld = (b"anonymous", b"unknown", b"Anonymous", b"restricted", b"", b"<unknown>",
                b"Private", b"anonymous")
    for i, who in enumerate(withheld):
        header = HEADER.replace(b"agi_callerid: 2125550142", b"agi_callerid: " + who) \
            .replace(b"PJSIP/caller-00000000", f"PJSIP/carrier-0000001{i}".encode())

        def answer(line: str, number: str = f"201555{i:04d}") -> list[str]:
            if line.startswith("GET DATA acdkit/cb-enter-number"):
                return [f"200 result={number}"]
            return caller_presses({"acdkit/overflow-offer": "1",
                                   "acdkit/cb-number-confirm": "1"})(line)

        statuses.append((await converse(server.port, answer, header))[-1].split()[-1])
    assert statuses == [dv.STATUS_STORED] * 5 + [dv.STATUS_WAIT] * 3
    assert len(await pool.list_tasks()) == 5


async def test_no_key_keeps_the_caller_waiting(server: AgiServer, pool: Pool) -> None:
    commands = await converse(server.port, caller_presses({}))
    assert commands[-1] == f"SET VARIABLE {dv.STATUS} {dv.STATUS_WAIT}"
    assert await pool.list_tasks() == []


async def test_a_hang_up_ends_the_route_quietly(server: AgiServer, pool: Pool) -> None:
    def answer(line: str) -> list[str]:
        if line.startswith("GET VARIABLE"):
            return ["200 result=0"]
        return ["HANGUP", "200 result=-1 endpos=100"]

    commands = await converse(server.port, answer)
    assert commands == ["GET VARIABLE ACDKIT_SINCE",
                        "STREAM FILE acdkit/overflow-offer 0123456789*#"]
    assert await pool.list_tasks() == []


async def test_choose_agent_picks_the_best_rated_free_member(server: AgiServer,
                                                             ctx: RouteContext) -> None:
    ctx.members = MemberBoard()
    for name in ("agent1", "agent2", "agent3"):
        ctx.members.apply({"Event": "QueueMember", "Queue": "sales", "Name": name,
                           "Location": f"PJSIP/{name}", "Status": "1",
                           "Paused": "1" if name == "agent3" else "0"})
    for task_id, agent, score in (("t1", "agent1", 2), ("t2", "agent2", 5), ("t3", "agent3", 5)):
        await ctx.ratings.record_served(Interaction(task_id, agent, "2125550199", "sales", 1.0))
        await ctx.ratings.rate(task_id=task_id, rater="2125550199",
                               scores={"attitude": score}, now=2.0)
    header = HEADER.replace(b"callback-offer?queue=sales", b"choose-agent?queue=sales")
    commands = await converse(server.port, lambda line: ["200 result=1"], header)
    assert commands == [f"SET VARIABLE {dv.AGENT} PJSIP/agent2",  # agent3 is paused
                        f"SET VARIABLE {dv.MEMBER} agent2",
                        f"SET VARIABLE {dv.STATUS} {dv.STATUS_CHOSEN}"]


def _members(ctx: RouteContext, *names: str) -> None:
    ctx.members = MemberBoard()
    for name in names:
        ctx.members.apply({"Event": "QueueMember", "Queue": "sales", "Name": name,
                           "Location": f"PJSIP/{name}", "Status": "1", "Paused": "0"})


@pytest.mark.parametrize(("key", "chosen"), [("2", "agent2"), ("0", None), ("", None)])
async def test_choose_agent_menu_lets_the_caller_pick_a_member(
        server: AgiServer, ctx: RouteContext, key: str, chosen: str | None) -> None:
    """ratings.choose_agent = 3: the Stasis menu over AGI (unrated members by name); the key
    picks a member, 0 or no key leaves the choice to Queue()."""
    _members(ctx, "agent1", "agent2", "agent3")
    ctx.settings = replace(ctx.settings, ratings=replace(ctx.settings.ratings, choose_agent=3))

    def answer(line: str) -> list[str]:
        if line == "STREAM FILE acdkit/rate-choose-intro 0123456789*#" and key:
            return [f"200 result={ord(key)} endpos=10"]
        return ["200 result=0 endpos=10"]

    header = HEADER.replace(b"callback-offer?queue=sales", b"choose-agent?queue=sales")
    commands = await converse(server.port, answer, header)
    if chosen is None:
        assert commands[-1] == f"SET VARIABLE {dv.STATUS} {dv.STATUS_NONE}"
        assert not [c for c in commands if dv.AGENT in c]
        return
    assert "SAY DIGITS 2 \"\"" in commands  # "you chose agent 2"
    assert commands[-3:] == [f"SET VARIABLE {dv.AGENT} PJSIP/{chosen}",
                             f"SET VARIABLE {dv.MEMBER} {chosen}",
                             f"SET VARIABLE {dv.STATUS} {dv.STATUS_CHOSEN}"]


def _watcher(ctx: RouteContext) -> Watcher:
    ctx.members = ctx.members or MemberBoard()
    return Watcher(ctx.pool, ctx.numbers, ctx.clock, ctx.members, ctx.ratings)


async def _ami(ctx: RouteContext, *events: dict[str, str]) -> None:
    """AMI events as ``acdkit agi``'s watcher gets them."""
    watcher = _watcher(ctx)
    for event in events:
        watcher.on_event(event)
    await watcher.drain()


COMPLETE = {"Event": "AgentComplete", "Queue": "sales", "MemberName": "agent2",
            "Uniqueid": "1795626532.0", "CallerIDNum": "2125550142", "TalkTime": "12"}
SURVEY = HEADER.replace(b"callback-offer?queue=sales", b"survey?queue=sales")


def rates(score: str) -> Answer:
    def answer(line: str) -> list[str]:
        if line == "GET VARIABLE MEMBERNAME":
            return ["200 result=1 (agent1)"]  # what a forged request claims: never believed
        if "rate-q-" in line:
            return [f"200 result={ord(score)} endpos=10"]
        return ["200 result=0 endpos=10"]
    return answer


@pytest.fixture(autouse=True)
def _short_survey_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "SURVEY_WAIT", 0.1)


async def test_survey_after_dial_rates_the_member_choose_agent_set(
        server: AgiServer, ctx: RouteContext) -> None:
    """After Dial(${ACDKIT_AGENT},,g) there is no AgentComplete: the answered DialEnd to a
    queue member's interface is what AMI recorded, and the survey rates that member."""
    _members(ctx, "agent3")
    await _ami(ctx, {"Event": "DialEnd", "DialStatus": "ANSWER", "Uniqueid": "1795626532.0",
                     "Channel": "PJSIP/caller-00000000", "CallerIDNum": "2125550142",
                     "DestChannel": "PJSIP/agent3-0000001a"})
    commands = await converse(server.port, rates("5"), SURVEY)
    assert commands[-1] == f"SET VARIABLE {dv.STATUS} {dv.STATUS_RATED}"
    assert (await ctx.ratings.agent_summary("agent3")).ratings == 1
    assert (await ctx.ratings.agent_summary("agent1")).ratings == 0


async def test_survey_rates_the_member_who_took_the_call(server: AgiServer,
                                                         ctx: RouteContext) -> None:
    await _ami(ctx, COMPLETE)
    keys = iter("45#")

    def answer(line: str) -> list[str]:
        if "rate-q-" in line:
            return [f"200 result={ord(next(keys))} endpos=10"]
        return ["200 result=0 endpos=10"]

    commands = await converse(server.port, answer, SURVEY)
    assert commands[-1] == f"SET VARIABLE {dv.STATUS} {dv.STATUS_RATED}"
    summary = await ctx.ratings.agent_summary("agent2")
    assert summary.ratings == 1
    assert summary.categories["attitude"].mean == 4.0
    assert summary.categories["availability"].count == 0  # "#" skipped it


async def test_surveys_of_calls_acdkit_never_recorded_rate_nobody(server: AgiServer,
                                                                  ctx: RouteContext) -> None:
    """10 forged survey requests (made-up uniqueids, MEMBERNAME=agent1, a 1 to every
    question) leave agent1's rating alone and ask no question."""
    await _ami(ctx, {**COMPLETE, "MemberName": "agent1", "Uniqueid": "1795626000.1"})
    for i in range(10):
        forged = SURVEY.replace(b"agi_uniqueid: 1795626532.0",
                                f"agi_uniqueid: 1795626999.{i}".encode())
        commands = await converse(server.port, rates("1"), forged)
        assert commands == [f"SET VARIABLE {dv.STATUS} {dv.STATUS_NONE}"]
    assert (await ctx.ratings.agent_summary("agent1")).ratings == 0


async def test_a_recorded_call_is_surveyed_once_by_its_own_caller(server: AgiServer,
                                                                  ctx: RouteContext) -> None:
    await _ami(ctx, COMPLETE)
    stranger = SURVEY.replace(b"agi_callerid: 2125550142", b"agi_callerid: 2125550999")
    assert (await converse(server.port, rates("1"), stranger))[-1].endswith(dv.STATUS_NONE)
    assert (await converse(server.port, rates("5"), SURVEY))[-1].endswith(dv.STATUS_RATED)
    again = await converse(server.port, rates("1"), SURVEY)
    assert again == [f"SET VARIABLE {dv.STATUS} {dv.STATUS_NONE}"]
    summary = await ctx.ratings.agent_summary("agent2")
    assert summary.ratings == 1 and summary.categories["attitude"].mean == 5.0


async def test_voice_request_records_fetches_and_submits(server: AgiServer, ctx: RouteContext,
                                                         pool: Pool, tmp_path: Path) -> None:
    jobs = FakeJobQueue()
    fetched: list[str] = []

    async def fetch(name: str) -> bytes | None:
        fetched.append(name)
        return b"RIFF" + b"\0" * 2000

    ctx.jobs, ctx.fetch = jobs, fetch
    ctx.settings = replace(ctx.settings, requests=replace(ctx.settings.requests,
                                                          audio_dir=str(tmp_path)))
    header = HEADER.replace(b"callback-offer?queue=sales", b"voice-request?queue=sales")
    commands = await converse(server.port, caller_presses({"acdkit/cb-number-confirm": "1"}),
                              header)
    record = [c for c in commands if c.startswith("RECORD FILE")]
    assert record == ["RECORD FILE /var/spool/asterisk/recording/acdkit-vr-1795626532.0 wav # "
                      "60000 0 BEEP s=4"]
    assert fetched == ["acdkit-vr-1795626532.0"]
    assert commands[-1] == f"SET VARIABLE {dv.STATUS} {dv.STATUS_STORED}"
    task = await pool.get_task(commands[-2].split()[-1])
    assert task is not None
    assert (task.kind, task.skill, task.number) == (TaskKind.VOICE_REQUEST, "sales",
                                                    "+12125550142")
    assert [j[1] for j in jobs.jobs] == ["acdkit.jobs.transcribe"], jobs.jobs


async def test_callback_offer_replays_the_recorded_lab_transcript(server: AgiServer,
                                                                  pool: Pool) -> None:
    """tests/unit/fixtures/agi/callback-offer.transcript was recorded on the lab (22.10.1):
    the caller pressed 1 in the offer and 1 during the number's read-back. Played back, the
    route sends the same commands (the new task id and its reference aside)."""
    recorded = (Path(__file__).parents[1] / "unit" / "fixtures" / "agi" /
                "callback-offer.transcript").read_text().splitlines()
    sent = [line[2:] for line in recorded if line.startswith("> ")]
    replies = iter(line[2:] for line in recorded if line.startswith("< "))
    commands = await converse(server.port, lambda line: [next(replies)])

    def masked(lines: list[str]) -> list[str]:
        return [re.sub(r"(TASK_ID|SAY DIGITS) [0-9a-f]{8,16}\b", r"\1 X", c) for c in lines]

    assert masked(commands) == masked(sent)
    task = await pool.get_task(commands[-2].split()[-1])
    assert task is not None and task.enqueued_at == 1795628720.0  # ACDKIT_SINCE: its place
