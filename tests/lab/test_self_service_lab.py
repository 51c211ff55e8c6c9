"""Calling again, for real: a SIPp caller with a pending callback hears it before the menu
and keeps, cancels, moves it or speaks with an agent now; an anonymous caller hears nothing;
a text reply reaches the SIPp customer as a SIP MESSAGE, and a refused one (405) falls back
to a call. `acdkit serve` and `acdkit worker` run as processes (docs/self-service.md)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.lab.conftest import Serve, Worker, busy_agent_center
from tests.lab.observer import observe_channels
from tests.lab.test_overflow_callbacks import FAST, show, state_of, wait_for

from acdkit.bootstrap import open_pool
from acdkit.config import load_settings
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.labkit.sipp import Peer, agent_peer, caller, customer_peer
from acdkit.policies import number_policy
from acdkit.services.callbacks import callback_store
from acdkit.store.requests import submit_request

pytestmark = pytest.mark.lab

CUSTOMER = "12125550123"
LATER_CALLER = "12125550177"
TZ = ZoneInfo("America/New_York")  # the lab's center.timezone
ARI_MESSAGES = {"ACDKIT_MESSAGING_TRANSPORT": "ari",
                "ACDKIT_MESSAGING_URI": "pjsip:pstn/sip:{number}@127.0.0.4:5080"}
SIP_MESSAGES = {"ACDKIT_MESSAGING_TRANSPORT": "sip",
                "ACDKIT_MESSAGING_URI": "sip:{number}@127.0.0.4:5080",
                "ACDKIT_MESSAGING_TIMEOUT": "4"}


@pytest.fixture
def center(serve: Serve, tmp_path: Path, request: pytest.FixtureRequest
           ) -> Iterator[tuple[Serve, Worker]]:
    """serve + worker, agent 1 signed in and paused; a test parametrizes it (indirect) with
    more environment (messaging, overflow timing)."""
    extra = getattr(request, "param", {})
    yield from busy_agent_center(serve, tmp_path, {**FAST, **extra})


def in_store(serve: Serve, work: Any) -> Any:
    """Run ``work(store, settings)`` against the test's Redis with serve's settings."""
    async def go() -> Any:
        settings = load_settings(env=serve.env())
        pool = await open_pool(settings)
        try:
            return await work(callback_store(pool, settings), settings)
        finally:
            await pool.close()

    return asyncio.run(go())


def book(serve: Serve, *, due_at: float | None = None, placed: float | None = None) -> str:
    """A callback for CUSTOMER booked through the store (as the offer books it): instant,
    with its place at ``placed``, or scheduled at ``due_at``."""
    async def work(store: Any, settings: Any) -> str:
        now = time.time()
        task = Task(id=uuid.uuid4().hex[:16], kind=TaskKind.CALLBACK, skill="sales",
                    created_at=now, enqueued_at=due_at or placed or now,
                    state=TaskState.SCHEDULED if due_at else TaskState.QUEUED, due_at=due_at,
                    number=f"+{CUSTOMER}", source="overflow:ivr:main")
        result = await store.book_callback(task, policy=number_policy(settings),
                                           caller_number=CUSTOMER, now=now)
        return str(result.task.id)

    return str(in_store(serve, work))


def call_again(dtmf: str, caller_id: str = CUSTOMER, **kw: Any) -> Any:
    result = caller("100", dtmf=dtmf, caller_id=caller_id, timeout=kw.pop("timeout", 60),
                    **kw).run()
    assert result.ok, result
    return result


def events(serve: Serve, task_id: str) -> list[dict[str, Any]]:
    return list(show(serve, task_id)["history"])


def test_cancel_then_no_customer_is_dialed(center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    with agent_peer() as agents, customer_peer(hangup="*", hangup_after=2) as customers:
        agents.start()
        customers.start()
        task_id = book(serve)
        result = call_again("wwww2")
        assert result.hung_up_by == "remote", "acdkit says goodbye and hangs up"
        assert state_of(serve, task_id) == "cancelled"
        serve.cli("agents", "resume", "1")
        time.sleep(8)  # the dispatcher would have reserved the agent within a second
        assert customers.invites() == [], "a cancelled callback was dialed"
        assert agents.invites() == []
    cancelled = [e for e in events(serve, task_id) if e["event"] == "caller_cancelled"]
    assert cancelled and cancelled[0]["fields"]["channel"].startswith("PJSIP/caller-")


def test_keep_move_cancel_story(center: tuple[Serve, Worker]) -> None:
    """One callback kept, moved, then cancelled by its caller: the whole story is audited."""
    serve, _ = center
    task_id = book(serve)
    call_again("wwww1")
    assert state_of(serve, task_id) == "queued"
    when = (datetime.now(TZ) + timedelta(hours=2)).replace(second=0, microsecond=0)
    call_again("wwww3" + "w" * 6 + when.strftime("%H%M") + "w" * 12 + "1", timeout=90)
    moved = show(serve, task_id)["task"]
    assert moved["state"] == "scheduled" and abs(moved["due_at"] - when.timestamp()) < 1
    call_again("wwww2")
    assert state_of(serve, task_id) == "cancelled"
    story = [e["event"] for e in events(serve, task_id)]
    for done in ("caller_kept", "caller_moved", "caller_cancelled"):
        assert done in story, story
    print("\n--- acdkit callbacks show ---\n" + serve.cli("callbacks", "show", task_id).stdout)


def test_move_dials_at_the_new_time_not_the_old(center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    serve.cli("agents", "resume", "1")  # a free agent: only the time holds the callback
    old = time.time() + 45
    new = (datetime.now(TZ) + timedelta(seconds=150)).replace(second=0, microsecond=0)
    with observe_channels() as seen, agent_peer() as agents, \
            customer_peer(hangup="*", hangup_after=2) as customers:
        agents.start()
        customers.start()
        task_id = book(serve, due_at=old)
        call_again("wwww3" + "w" * 6 + new.strftime("%H%M") + "w" * 12 + "1", timeout=90)
        assert show(serve, task_id)["task"]["state"] == "scheduled"
        invite = customers.wait_for_invites(1, timeout=new.timestamp() - time.time() + 30)[0]
        assert abs(invite.time - new.timestamp()) <= 5.0, \
            f"dialed {invite.time - new.timestamp():+.1f} s from the new time"
        assert agents.invites(), "the agent was rung"
        # Asterisk's own order, not SIPp's stamps (tests/lab/observer.py says why).
        assert seen.wait_for_customer_legs() and seen.customers_dialed_early() == [], seen.events
    assert invite.time > old + 30, "dialed at the old time"


@pytest.mark.parametrize("center", [{"ACDKIT_OVERFLOW_FIRST_AFTER": "300"}], indirect=True)
def test_agent_now_keeps_the_callbacks_place(center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    booked_at = time.time() - 60
    task_id = book(serve, placed=booked_at)
    with agent_peer() as agents:
        agents.start()
        later = caller("100", dtmf="1", caller_id=LATER_CALLER, hangup_after=40,
                       timeout=60).start()
        wait_for("the later caller queued", lambda: _call_of(serve, LATER_CALLER), 20)
        again = caller("100", dtmf="wwww4", caller_id=CUSTOMER, hangup_after=30,
                       timeout=60).start()
        mine = wait_for("the callback's caller queued", lambda: _call_of(serve, CUSTOMER), 25)
        assert abs(mine["enqueued_at"] - booked_at) < 1, "the call kept the callback's place"
        assert state_of(serve, task_id) == "cancelled"
        serve.cli("agents", "resume", "1")
        agents.wait_for_invites(1, timeout=20)
        served = wait_for("a call connected", lambda: [t for t in _calls(serve)
                                                       if t["state"] == "active"], 15)
        assert [t["number"] for t in served] == [CUSTOMER], served
        again.wait(60)
        later.wait(60)
    took = [e for e in events(serve, task_id) if e["event"] == "caller_took_live"]
    assert took and took[0]["fields"]["call"] == mine["id"]


def _calls(serve: Serve) -> list[dict[str, Any]]:
    tasks = json.loads(serve.cli("tasks", "list", "--json").stdout)
    return [t for t in tasks if t.get("kind") == "call"]


def _call_of(serve: Serve, number: str) -> dict[str, Any] | None:
    found = [t for t in _calls(serve) if t["number"] == number and t["state"] == "queued"]
    if not found:
        return None
    [task] = json.loads(serve.cli("tasks", "show", found[0]["id"], "--json").stdout)
    return dict(task["task"])


def test_an_anonymous_caller_gets_the_normal_menu(center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    task_id = book(serve)
    call_again("1", caller_id="anonymous", hangup_after=6)
    assert "pending item" not in serve.log()
    assert [t["number"] for t in _calls(serve)] == ["anonymous"], "the menu queued the call"
    assert state_of(serve, task_id) == "queued"
    assert not [e for e in events(serve, task_id) if e["event"].startswith("caller_")]


# -- text replies ---------------------------------------------------------------------------


def voice_request(serve: Serve) -> str:
    """A voice request of CUSTOMER (its transcription is not queued), its reference."""
    class NoJobs:
        def enqueue(self, *args: Any, **kw: Any) -> str:
            return "none"

    async def work(store: Any, settings: Any) -> str:
        task = await submit_request(store.pool, NoJobs(), number=f"+{CUSTOMER}",
                                    skill="sales", audio=b"\0" * 1600, fmt="sln",
                                    now=time.time(), source="test",
                                    settings=settings.requests)
        return str(task.attributes["ref"])

    return str(in_store(serve, work))


def messages_received(peer: Peer) -> list[tuple[str, str]]:
    """(request line, body) of each MESSAGE the peer received, from SIPp's message log."""
    return [(text.split("\n", 1)[0], text.partition("\n\n")[2].strip())
            for text in _logged(peer) if text.startswith("MESSAGE sip:")]


def _logged(peer: Peer) -> list[str]:
    """The SIP messages SIPp logged as received, each as its text (no log framing)."""
    assert peer.workdir is not None
    log = (peer.workdir / "messages.log").read_text(errors="replace").replace("\r", "")
    found = []
    for block in re.split(r"^-{20,} .*$", log, flags=re.M):
        head, _, text = block.strip().partition("\n")
        if head.startswith("UDP message received"):
            found.append(text.strip())
    return found


def reply_story(serve: Serve, ref: str) -> dict[str, Any]:
    return dict(json.loads(serve.cli("requests", "show", ref, "--json").stdout)[0])


@pytest.mark.parametrize("center", [ARI_MESSAGES], indirect=True)
def test_a_text_reply_arrives_as_a_sip_message(center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    ref = voice_request(serve)
    answer = "Your parcel ships on Monday."
    with customer_peer(hangup="*", hangup_after=2) as customers:
        customers.start()
        serve.cli("requests", "reply", ref, "--text", answer)
        got = wait_for("a MESSAGE", lambda: messages_received(customers), 30)
        time.sleep(3)
        assert customers.invites() == [], "delivered by message: no call"
    first_line, body = got[0]
    assert first_line.startswith(f"MESSAGE sip:{CUSTOMER}@127.0.0.4")
    assert answer in body and ref in body
    story = reply_story(serve, ref)
    assert story["request"]["status"] == "delivered"
    sent = [e for e in story["history"] if e["event"] == "reply_message"]
    assert sent and sent[0]["fields"]["outcome"] == "sent" and sent[0]["fields"]["via"] == "ari"
    print("\n--- the MESSAGE as the customer's SIPp received it ---\n"
          + _raw_message(customers))


def _raw_message(peer: Peer) -> str:
    return next(text for text in _logged(peer) if text.startswith("MESSAGE sip:"))


@pytest.mark.parametrize("center", [SIP_MESSAGES], indirect=True)
def test_a_refused_message_falls_back_to_a_call(center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    ref = voice_request(serve)
    with customer_peer(refuse_msg="*", hangup="*", hangup_after=8) as customers:
        customers.start()
        serve.cli("requests", "reply", ref, "--text", "We refunded your order.")
        invite = customers.wait_for_invites(1, timeout=40)[0]
        got = messages_received(customers)
        refused = [m for m in customers.messages() if m.sent and m.status == 405]
    assert got and refused and refused[0].time < invite.time
    assert invite.user == CUSTOMER
    story = reply_story(serve, ref)
    tried = [e for e in story["history"] if e["event"] == "reply_message"]
    assert tried and tried[0]["fields"]["outcome"] == "refused"
    assert "405" in tried[0]["fields"]["detail"]


@pytest.mark.parametrize("center", [ARI_MESSAGES], indirect=True)
def test_ari_cannot_see_a_refusal(center: tuple[Serve, Worker]) -> None:
    """Measured on Asterisk 22.10: sendMessage answers 202 and the far end's 405 is dropped,
    so the ari transport counts the reply delivered (docs/self-service.md)."""
    serve, _ = center
    ref = voice_request(serve)
    with customer_peer(refuse_msg="*") as customers:
        customers.start()
        serve.cli("requests", "reply", ref, "--text", "Refused but unseen.")
        wait_for("the 405", lambda: [m for m in customers.messages()
                                     if m.sent and m.status == 405], 30)
        time.sleep(2)
    tried = [e for e in reply_story(serve, ref)["history"] if e["event"] == "reply_message"]
    assert tried and tried[0]["fields"]["outcome"] == "sent"
    assert "202" in tried[0]["fields"]["detail"]
