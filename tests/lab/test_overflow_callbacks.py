"""Callback on overflow, for real: SIPp callers press keys (RFC 2833 pcaps), `acdkit serve`
and `acdkit worker` run as processes, the agent and the customer are SIPp phones."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from tests.lab.center import answered_at, task_story, tasks
from tests.lab.conftest import Serve, Worker, busy_agent_center
from tests.lab.observer import observe_channels

from acdkit.labkit.sipp import agent_peer, caller, customer_peer

pytestmark = pytest.mark.lab

CUSTOMER = "12125550123"  # the caller's own number (caller ID), a valid US number
# IVR "1" (sales) at once; the offer comes after overflow.first_after (2 s here); "1" =
# instant callback; then "1" confirms the number read back.
INSTANT = "1" + "w" * 10 + "1" + "w" * 8 + "1"
FAST = {"ACDKIT_OVERFLOW_FIRST_AFTER": "2", "ACDKIT_AGENTS_RING_TIMEOUT": "4",
        "ACDKIT_AGENTS_WRAP_UP": "1", "ACDKIT_AGENTS_WHISPER": "false",
        "ACDKIT_CALLBACKS_INTERVALS": "2,2,2", "ACDKIT_CALLBACKS_MAX_ATTEMPTS": "3"}


@pytest.fixture
def center(serve: Serve, tmp_path: Path) -> Iterator[tuple[Serve, Worker]]:
    """serve + worker, agent 1 signed in at PJSIP/agent1 and paused (busy)."""
    yield from busy_agent_center(serve, tmp_path, FAST)


def callbacks(serve: Serve) -> list[dict[str, Any]]:
    return json.loads(serve.cli("callbacks", "list", "--json").stdout)  # type: ignore[no-any-return]


def show(serve: Serve, task_id: str) -> dict[str, Any]:
    return json.loads(serve.cli("callbacks", "show", task_id, "--json").stdout)[0]  # type: ignore[no-any-return]


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def book_instant(serve: Serve) -> dict[str, Any]:
    result = caller("100", dtmf=INSTANT, caller_id=CUSTOMER, timeout=60).run()
    assert result.ok, result
    assert result.hung_up_by == "remote", "acdkit hangs up after the confirmation"
    booked = callbacks(serve)
    assert len(booked) == 1, booked
    assert booked[0]["number"] == f"+{CUSTOMER}"
    return booked[0]


def state_of(serve: Serve, task_id: str) -> str:
    return str(show(serve, task_id)["task"]["state"])


def test_an_agent_free_during_the_offer_takes_the_caller_at_once(
        center: tuple[Serve, Worker]) -> None:
    """The agent comes back while the offer plays (a prompt of about 14 s): the offer is
    given up, its prompt stopped, and the caller bridged within 1 s of the agent's answer;
    nothing is booked. Asterisk would have moved the caller only after the prompt, and held
    every other ARI request of serve up as long (docs/architecture.md §7)."""
    serve, _ = center
    with agent_peer(hangup="*", hangup_after=2) as agents:
        agents.start()
        waiting = caller("100", dtmf="1", caller_id=CUSTOMER, hangup_after=None,
                         timeout=40).start()
        wait_for("the offer", lambda: "overflow offer" in serve.log(), 15)
        time.sleep(1.0)  # into the prompt
        serve.cli("agents", "resume", "1")
        [invite] = agents.wait_for_invites(1, timeout=15)
        assert waiting.wait(30).ok  # the agent hung up after 2 s: the caller got a BYE
        answered = answered_at(agents, invite.call_id)
    [task] = [t for t in tasks(serve) if t["kind"] == "call"]
    _, story = task_story(serve, task["id"])
    assert [e["event"] for e in story] == ["add", "reserve", "connect", "complete"], story
    connected = float(story[2]["ts"])
    assert connected - answered < 1.0, f"bridged {connected - answered:.2f} s after the answer"
    assert "offer given up, an agent is being connected" in serve.log()
    assert callbacks(serve) == []


def test_instant_callback_dials_the_agent_first_then_the_customer(
        center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    with observe_channels() as seen, agent_peer() as agents, \
            customer_peer(hangup="*", hangup_after=2) as customers:
        agents.start()
        customers.start()
        booked = book_instant(serve)
        assert booked["state"] == "queued"  # in the pool with the caller's place
        serve.cli("agents", "resume", "1")
        customer_invite = customers.wait_for_invites(1, timeout=30)[0]
        agent_invite = agents.invites()[0]
        assert agent_invite.user == "agent1"
        assert customer_invite.user == CUSTOMER
        # Asterisk's own order, not SIPp's stamps (tests/lab/observer.py says why).
        assert seen.wait_for_customer_legs(), seen.events
        assert seen.customers_dialed_early() == [], seen.events
        wait_for("completed", lambda: state_of(serve, booked["id"]) == "completed", 20)
    history = [e["event"] for e in show(serve, booked["id"])["history"]]
    assert "booked" in history and "attempt_answered" in history


def test_agent_first_holds_for_every_dial_back_under_load(center: tuple[Serve, Worker]) -> None:
    """Nine dial-backs, three at a time, each agent's phone ringing a second before it
    answers: every customer leg is created after its agent leg is up, and each customer is
    dialed once."""
    serve, _ = center
    for agent in ("2", "3"):
        serve.cli("agents", "add", agent, "--pin", "1234", "--skill", "sales")
        serve.cli("agents", "login", agent, "--reach", f"PJSIP/agent{agent}")
    numbers = [f"212555013{i}" for i in range(9)]
    with observe_channels() as seen, agent_peer(ring_after=1.0) as agents, \
            customer_peer(hangup="*", hangup_after=1) as customers:
        agents.start()
        customers.start()
        ids = [json.loads(serve.cli("tasks", "followup", f"+1{n}", "--skill", "sales",
                                    "--json").stdout)[0]["task"]["id"] for n in numbers]
        serve.cli("agents", "resume", "1")
        wait_for("all completed", lambda: all(
            state_of_task(serve, i) == "completed" for i in ids), 120)
        assert seen.customers_dialed_early() == [], seen.events
        invited = sorted(i.user for i in customers.invites())
    assert invited == [f"1{n}" for n in numbers], invited  # each once (never twice at once)
    assert len(seen.customer_legs()) == len(numbers)


def state_of_task(serve: Serve, task_id: str) -> str:
    return str(json.loads(serve.cli("tasks", "show", task_id, "--json").stdout)[0]
               ["task"]["state"])


def test_scheduled_callback_is_dialed_on_time(center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    serve.cli("agents", "resume", "1")  # an agent is free: only the time holds the callback
    tz = ZoneInfo("America/New_York")  # the lab's center.timezone
    now = datetime.now(tz)
    # 45 to 105 s ahead: keying the time in takes about 25 s after the offer, and the booking
    # must still be in the future (scheduled) when the caller is done.
    when = (now + timedelta(seconds=105)).replace(second=0, microsecond=0)
    hhmm = when.strftime("%H%M")
    # Keep the caller waiting long enough for the offer: the agent is ready, so the call
    # itself would be answered. Make the agent unreachable for live calls: pause it again.
    serve.cli("agents", "pause", "1")
    dtmf = "1" + "w" * 10 + "2" + "w" * 8 + "1" + "w" * 12 + hhmm + "w" * 12 + "1"
    with observe_channels() as seen, agent_peer() as agents, \
            customer_peer(hangup="*", hangup_after=2) as customers:
        agents.start()
        customers.start()
        result = caller("100", dtmf=dtmf, caller_id=CUSTOMER, timeout=90).run()
        assert result.ok, result
        booked = callbacks(serve)
        assert [b["state"] for b in booked] == ["scheduled"], booked
        serve.cli("agents", "resume", "1")
        invite = customers.wait_for_invites(1, timeout=when.timestamp() - time.time() + 30)[0]
        assert abs(invite.time - when.timestamp()) <= 5.0, \
            f"dialed {invite.time - when.timestamp():+.1f} s from its time"
        assert agents.invites(), "the agent was rung"
        # Asterisk's own order, not SIPp's stamps (tests/lab/observer.py says why).
        assert seen.wait_for_customer_legs() and seen.customers_dialed_early() == [], seen.events


def test_no_answer_twice_then_answered_takes_three_attempts(
        center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    with agent_peer() as agents:
        agents.start()
        ringing = customer_peer(noanswer="*").start()
        booked = book_instant(serve)
        serve.cli("agents", "resume", "1")
        ringing.wait_for_invites(2, timeout=60)
        ringing.stop()
        with customer_peer(hangup="*", hangup_after=2) as answering:
            answering.start()
            answering.wait_for_invites(1, timeout=60)
            wait_for("completed", lambda: state_of(serve, booked["id"]) == "completed", 30)
    story = show(serve, booked["id"])
    ends = {f"attempt_{o}" for o in ("answered", "no_answer", "busy", "failed",
                                      "agent_no_answer")}
    outcomes = [e["event"] for e in story["history"] if e["event"] in ends]
    assert outcomes == ["attempt_no_answer", "attempt_no_answer", "attempt_answered"], outcomes
    assert story["task"]["attempts"] == 3


def test_a_premium_rate_number_is_refused_and_nothing_is_stored(
        center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    # The caller ID is a premium-rate number; the caller then keys another premium number.
    dtmf = "1" + "w" * 10 + "1" + "w" * 10 + "19005550199#"
    result = caller("100", dtmf=dtmf, caller_id="19005550123", hangup_after=30,
                    timeout=60).run()
    assert result.ok, result
    assert callbacks(serve) == []
    log = serve.log()
    assert "number refused: premium_rate" in log
    calls = json.loads(serve.cli("tasks", "list", "--json").stdout)
    refusals = [e for t in calls for e in json.loads(
        serve.cli("tasks", "show", t["id"], "--json").stdout)[0]["history"]
        if e["event"] == "callback_refused"]
    assert refusals and {r["fields"]["reason"] for r in refusals} == {"premium_rate"}


def test_a_worker_killed_mid_attempt_never_dials_twice(
        center: tuple[Serve, Worker]) -> None:
    serve, worker = center
    with agent_peer() as agents:
        agents.start()
        # The customer's phone rings 3 s before answering: the worker dies meanwhile.
        with customer_peer(ring_after=3, hangup="*", hangup_after=2) as customers:
            customers.start()
            booked = book_instant(serve)
            serve.cli("agents", "resume", "1")
            customers.wait_for_invites(1, timeout=30)
            worker.kill()
            time.sleep(2)
            worker.start()
            wait_for("completed", lambda: state_of(serve, booked["id"]) == "completed", 60)
            invites = customers.invites()
    assert len(invites) == 1, f"the customer was dialed {len(invites)} times"
    assert len(agents.invites()) == 1



def test_a_failed_callback_is_replayed_and_completed(center: tuple[Serve, Worker]) -> None:
    serve, _ = center
    with agent_peer() as agents:
        agents.start()
        with customer_peer(noanswer="*") as ringing:
            ringing.start()
            booked = book_instant(serve)
            serve.cli("agents", "resume", "1")
            wait_for("failed", lambda: state_of(serve, booked["id"]) == "failed", 60)
        assert len(ringing.invites()) == 3  # callbacks.max_attempts
        replayed = serve.cli("callbacks", "replay", booked["id"])
        assert replayed.returncode == 0
        with customer_peer(hangup="*", hangup_after=2) as answering:
            answering.start()
            answering.wait_for_invites(1, timeout=30)
            wait_for("completed", lambda: state_of(serve, booked["id"]) == "completed", 30)
    events = [e["event"] for e in show(serve, booked["id"])["history"]]
    assert "replayed" in events, events
    assert events.index("attempt_answered") > max(
        i for i, e in enumerate(events) if e == "attempt_no_answer")
