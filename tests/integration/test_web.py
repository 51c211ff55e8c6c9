"""The pages against a real Redis through aiohttp's test client: sign-in, cookies, CSRF,
failed sign-in limits, roles, the agent's actions through the store, the supervisor's
commands for serve, and the one subscription fanned out to many streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from poolkit import StepClock, kpi_day, ready_agent, task
from webkit import (
    PASSWORD,
    PIN,
    add_agent,
    add_supervisor,
    app_of,
    csrf_of,
    settings,
    sign_in,
)

from acdkit.config import AgentSettings, CenterSettings, RequestSettings
from acdkit.core.agents import AgentEvent, AgentState
from acdkit.core.pins import PinOutcome, PinPolicy
from acdkit.core.tasks import TaskEvent, TaskKind, TaskState
from acdkit.ports import SystemClock
from acdkit.speech import tts
from acdkit.store.callbacks import CallbackStore
from acdkit.store.dnc import dnc_add
from acdkit.store.pins import verify_pin
from acdkit.store.pool import Pool
from acdkit.store.requests import RequestStore, submit_request
from acdkit.testing import FakeJobQueue
from acdkit.web.events import Hub, Listener

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(pool: Pool, clock: StepClock) -> AsyncIterator[TestClient]:
    app = app_of(pool, clock, FakeJobQueue(), settings(max_failures=3))
    async with TestClient(TestServer(app)) as made:
        yield made


async def test_a_wrong_pin_is_refused_and_the_right_one_opens_the_page(
        client: TestClient, pool: Pool) -> None:
    await add_agent(pool)
    status, body = await sign_in(client, "/agent", "7", "9999")
    assert status == 401 and "Wrong agent id or PIN" in body
    token = csrf_of(await (await client.get("/agent")).text())
    resp = await client.post("/agent/login", data={"csrf": token, "who": "7", "secret": PIN},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/agent/"
    cookie = resp.headers["Set-Cookie"]
    assert "acdkit_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # no TLS here: a Secure cookie would never come back
    body = await (await client.get("/agent/")).text()
    assert "Agent 7" in body and 'id="state"' in body


async def test_a_form_without_its_csrf_token_changes_nothing(client: TestClient,
                                                             pool: Pool) -> None:
    await add_agent(pool)
    await pool.move_agent("7", AgentEvent.LOGIN, 1.0, reach="PJSIP/agent7")
    await sign_in(client, "/agent", "7", PIN)
    resp = await client.post("/agent/pause", data={"reason": "lunch"})
    assert resp.status == 403
    resp = await client.post("/agent/pause", data={"reason": "lunch", "csrf": "forged"})
    assert resp.status == 403
    assert (await pool.get_agent("7")).state is AgentState.READY  # type: ignore[union-attr]
    page = await (await client.get("/agent/")).text()
    resp = await client.post("/agent/pause", data={"reason": "lunch", "csrf": csrf_of(page)})
    assert resp.status == 200 and "Paused: lunch" in await resp.text()
    agent = await pool.get_agent("7")
    assert agent is not None and agent.state is AgentState.PAUSED
    assert agent.pause_reason == "lunch"


async def test_sign_in_needs_the_token_of_its_own_form(client: TestClient, pool: Pool) -> None:
    await add_agent(pool)
    resp = await client.post("/agent/login", data={"csrf": "x" * 32, "who": "7",
                                                   "secret": PIN})
    assert resp.status == 403


async def test_failed_sign_ins_are_limited_per_agent_and_per_address(
        client: TestClient, pool: Pool) -> None:
    await add_agent(pool, "7")
    await add_agent(pool, "8")
    for _ in range(3):
        assert (await sign_in(client, "/agent", "7", "0000"))[0] == 401
    status, body = await sign_in(client, "/agent", "7", PIN)  # right PIN, still refused
    assert status == 429 and "Too many failed sign-ins" in body
    # The same address is refused for every agent id too.
    assert (await sign_in(client, "/agent", "8", PIN))[0] == 429


async def test_an_agent_session_cannot_open_the_supervisor_page(
        client: TestClient, pool: Pool) -> None:
    await add_agent(pool)
    await sign_in(client, "/agent", "7", PIN)
    resp = await client.get("/supervisor/", allow_redirects=False)
    assert resp.status == 403
    resp = await client.post("/supervisor/pause", data={"agent": "7"})
    assert resp.status == 403


async def test_the_agent_goes_ready_and_answers_a_voice_request_through_the_store(
        pool: Pool, clock: StepClock, tmp_path: Path) -> None:
    jobs = FakeJobQueue()
    config = replace(settings(), requests=RequestSettings(audio_dir=str(tmp_path)))
    made = await submit_request(pool, jobs, number="+12125550123", skill="sales",
                                audio=tts.speak("hello"), fmt="wav", now=clock.now(),
                                source="test", settings=config.requests)
    await add_agent(pool)
    async with TestClient(TestServer(app_of(pool, clock, jobs, config))) as client:
        await sign_in(client, "/agent", "7", PIN)
        page = await (await client.get("/agent/")).text()
        resp = await client.post("/agent/ready", data={"csrf": csrf_of(page),
                                                       "reach": "PJSIP/agent7"})
        assert (await pool.get_agent("7")).state is AgentState.READY  # type: ignore[union-attr]
        await pool.move_task(made.id, TaskEvent.DUE, clock.now())
        assert await pool.claim("7", made.id, clock.now())
        page = await (await client.get("/agent/")).text()
        assert "Voice request" in page and "/agent/audio/" + made.id in page
        audio = await client.get(f"/agent/audio/{made.id}")
        assert audio.status == 200 and len(await audio.read()) > 1_000
        resp = await client.post("/agent/answer", data={
            "csrf": csrf_of(page), "task": made.id, "text": "We will call on Monday"})
        assert "Answer saved" in await resp.text()
    request = await RequestStore(pool, config.requests).get(made.id)
    assert request is not None and request.reply_text == "We will call on Monday"
    assert request.replied_by == "7"
    assert any(j[1] == "acdkit.jobs.deliver_reply" for j in jobs.jobs)


async def test_a_supervisor_pauses_an_agent_raises_a_priority_and_asks_serve_to_listen(
        client: TestClient, pool: Pool) -> None:
    await add_agent(pool)
    await add_supervisor(pool)
    await pool.move_agent("7", AgentEvent.LOGIN, 1.0, reach="PJSIP/agent7")
    await pool.add_task(task("t1"))
    assert (await sign_in(client, "/supervisor", "sam", "wrong password!"))[0] == 401
    status, body = await sign_in(client, "/supervisor", "sam", PASSWORD,
                                 phone="+1 212 555 0100")
    assert status == 200 and 'data-agent="7"' in body and 'data-task="t1"' in body
    token = csrf_of(body)
    await client.post("/supervisor/priority", data={"csrf": token, "task": "t1",
                                                    "priority": "50"})
    assert (await pool.get_task("t1")).priority == 50  # type: ignore[union-attr]
    assert await pool.claim("7", "t1", 2.0)
    resp = await client.post("/supervisor/snoop", data={"csrf": token, "agent": "7",
                                                        "mode": "whisper"})
    assert "Calling +12125550100 to whisper on agent 7" in await resp.text()
    [command] = await CallbackStore(pool).queued_commands()
    assert command["op"] == "snoop" and command["mode"] == "whisper"
    assert command["reach"] == "+12125550100" and command["agent_id"] == "7"
    await pool.move_agent("7", AgentEvent.END, 3.0)
    await client.post("/supervisor/pause", data={"csrf": token, "agent": "7"})
    agent = await pool.get_agent("7")
    assert agent is not None and agent.state is AgentState.PAUSED
    assert agent.pause_reason == "by sam"


async def test_a_supervisor_phone_must_pass_the_number_policy(client: TestClient,
                                                             pool: Pool) -> None:
    await add_supervisor(pool)
    status, body = await sign_in(client, "/supervisor", "sam", PASSWORD, phone="1900 555 0100")
    assert status == 400 and "Phone refused" in body


async def _events(client: TestClient, path: str, got: list[str], first: asyncio.Event) -> None:
    async with client.get(path) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for line in resp.content:
            got.append(line.decode())
            if line.startswith(b"event:"):
                first.set()


async def test_one_subscription_feeds_every_stream(client: TestClient, pool: Pool) -> None:
    streams = [([], asyncio.Event()) for _ in range(3)]
    readers = [asyncio.create_task(_events(client, "/wallboard/stream", got, first))
               for got, first in streams]
    for _, first in streams:
        await asyncio.wait_for(first.wait(), 5)
    numsub = await pool.redis.pubsub_numsub(pool.keys.changes)
    assert numsub == [(pool.keys.changes, 1)]  # one per process, not one per browser
    await pool.add_task(task("t9"))
    async def updated(got: list[str]) -> None:
        while 'class="n waiting">1<' not in "".join(got):
            await asyncio.sleep(0.05)
    # Within 2 s, well before the 5 s re-render of an idle wallboard.
    await asyncio.wait_for(asyncio.gather(*(updated(got) for got, _ in streams)), 2)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def _changes(listener: Listener, names: set[str]) -> None:
    """Wait until ``listener`` has been told of every one of ``names``."""
    seen: set[str] = set()
    while not names <= seen:
        seen |= await listener.wait(1)


async def test_a_claim_for_several_agents_wakes_the_pages_with_every_change(
        pool: Pool, clock: StepClock) -> None:
    """The claim publishes its changes in one message, one per line; the hub reads each."""
    hub = Hub(pool.redis, pool.keys.changes, settle=0.0)
    running = asyncio.create_task(hub.run())
    try:
        await asyncio.wait_for(hub.connected.wait(), 5)
        names = {"agent:a1", "task:t1", "agent:a2", "task:t2"}
        async with hub.listen() as listener:
            for n in (1, 2):
                await ready_agent(pool, f"a{n}", now=clock.now())
                await pool.add_task(task(f"t{n}"), now=clock.now())
            await asyncio.wait_for(_changes(listener, names), 5)  # the set-up's own
            made = await pool.claim_next(["a1", "a2"], clock.now())
            assert len(made.claimed) == 2
            await asyncio.wait_for(_changes(listener, names), 5)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_wrong_pins_on_the_phone_and_the_page_count_together(
        pool: Pool, clock: StepClock) -> None:
    """The page checks PINs through store/pins.py like the phone login: wrong PINs typed
    on a phone lock the web sign-in too, even with the right PIN."""
    await add_agent(pool)
    policy = PinPolicy(max_failures=3, lockout=300)
    for _ in range(3):
        assert await verify_pin(pool, "7", "0000", policy) is not PinOutcome.OK
    config = replace(settings(max_failures=50), agents=AgentSettings(pin_max_failures=3))
    async with TestClient(TestServer(app_of(pool, clock, FakeJobQueue(), config))) as client:
        status, body = await sign_in(client, "/agent", "7", PIN)
    assert status == 429 and "Too many wrong PINs" in body


async def test_an_agent_cannot_go_ready_on_a_number_the_policy_refuses(
        client: TestClient, pool: Pool) -> None:
    await add_agent(pool)
    await sign_in(client, "/agent", "7", PIN)
    for reach in ("+19005550100", "PJSIP/carrier", "PJSIP/alice"):
        page = await (await client.get("/agent/")).text()
        await client.post("/agent/ready", data={"csrf": csrf_of(page), "reach": reach})
        agent = await pool.get_agent("7")
        assert agent is not None and agent.state is AgentState.LOGGED_OUT, reach


async def test_a_supervisor_phone_on_the_do_not_call_list_is_refused(
        client: TestClient, pool: Pool) -> None:
    await add_supervisor(pool)
    await dnc_add(pool, ["+12125550199"])
    status, body = await sign_in(client, "/supervisor", "sam", PASSWORD, phone="+12125550199")
    assert status == 400 and "Phone refused" in body
    status, body = await sign_in(client, "/supervisor", "sam", PASSWORD, phone="(212) 555-0198")
    assert status == 200, body[-600:]


def _zone_at_noon() -> str:
    """A zone where it is about noon now: "today" holds the last minutes whatever the hour."""
    offset = 12 - datetime.now(UTC).hour
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


async def test_the_wallboard_counts_callbacks_and_requests_per_skill(pool: Pool) -> None:
    now = time.time()
    await pool.add_tasks([
        task("c1", kind=TaskKind.CALLBACK, state=TaskState.SCHEDULED, due_at=now + 600),
        task("c2", kind=TaskKind.CALLBACK), task("c3", kind=TaskKind.CALLBACK),
        task("r1", kind=TaskKind.VOICE_REQUEST), task("t1"), task("t2", "support")])
    async with TestClient(TestServer(app_of(pool, SystemClock(), FakeJobQueue(),
                                            settings()))) as client:
        body = await (await client.get("/wallboard")).text()
    row = body[body.index("<td>sales</td>"):]
    cells = [c.split(">", 1)[1] for c in row[:row.index("</tr>")].split("</td>")[:-1]]
    assert cells[1] == "4" and cells[6:9] == ["1", "2", "1"], cells  # waiting; callbacks
    # pending and due, voice requests


async def test_the_wallboard_shows_the_figures_of_acdkit_stats(pool: Pool) -> None:
    """The day's service level, ASA and abandon rate come from core/kpis.py over the KPI
    stream, with the formula named: c1 answered after 4 s, c2 abandoned after 2 s."""
    await kpi_day(pool, time.time() - 80)
    config = replace(settings(), center=CenterSettings(timezone=_zone_at_noon()))
    async with TestClient(TestServer(app_of(pool, SystemClock(), FakeJobQueue(),
                                            config))) as client:
        body = await (await client.get("/wallboard")).text()
    row = body[body.index("<td>sales</td>"):]
    row = row[:row.index("</tr>")]
    cells = [c.split(">", 1)[1] for c in row.split("</td>")[:-1]]
    assert cells[3:6] == ["50%", "0:04", "50%"], cells  # SL, ASA, abandon rate
    assert "service level = answered_within / (answered + abandoned), T = 20 s" in body
