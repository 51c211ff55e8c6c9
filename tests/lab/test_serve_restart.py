"""`acdkit serve` killed (SIGKILL) under live calls, then started again: the new serve makes
the pool agree with what Asterisk really has (src/acdkit/ari/reconcile.py), and a caller
waiting past ``queue.max_wait`` is sent to the fallback queue."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.lab.center import FAST, add_agents, agents, eventually, task_story, tasks
from tests.lab.conftest import Serve, Worker, lab_channels
from tests.lab.test_overflow_callbacks import FAST as CALLBACK_FAST
from tests.lab.test_overflow_callbacks import book_instant, show, state_of, wait_for

from acdkit.labkit.sipp import Peer, SippProcess, agent_peer, caller, customer_peer

pytestmark = pytest.mark.lab

Phones = Callable[..., Peer]


def call(number: str, hangup_after: float | None, timeout: float = 40.0) -> SippProcess:
    """A caller from ``number`` choosing sales (1), started."""
    return caller("100", dtmf="1", hangup_after=hangup_after, caller_id=number,
                  timeout=timeout).start()


def task_of(serve: Serve, number: str, state: str | None = None,
            timeout: float = 10.0) -> dict[str, Any]:
    """The one task of caller ``number`` (once it is in ``state``)."""

    def probe() -> dict[str, Any] | None:
        found = [t for t in tasks(serve) if t["number"] == number]
        assert len(found) <= 1, found  # an adopted caller never gets a second task
        return found[0] if found and state in (None, found[0]["state"]) else None

    return eventually(probe, timeout, what=f"the task of {number} {state or ''}")


def agent_state(serve: Serve, agent_id: str, state: str, timeout: float = 10.0) -> None:
    eventually(lambda: agents(serve)[agent_id]["state"] == state, timeout,
               what=f"agent {agent_id} {state}")


def kill_and_restart(serve: Serve, between: Callable[[], object] | None = None) -> None:
    serve.stop(signal.SIGKILL)
    if between is not None:
        between()
    serve.start()


def channel_of(number: str) -> dict[str, Any] | None:
    return next((c for c in lab_channels()
                 if isinstance(c.get("caller"), dict) and c["caller"].get("number") == number),
                None)


def events(serve: Serve, task_id: str) -> list[str]:
    return [h["event"] for h in task_story(serve, task_id)[1]]


# ---- 1. held tasks of a dead serve --------------------------------------------------------------


def test_a_call_that_ended_while_serve_was_dead_is_completed(serve: Serve,
                                                             phones: Phones) -> None:
    """The caller hangs up while serve is dead: the new serve completes the task, hangs up
    the agent leg left in the bridge, and the agent goes through wrap-up back to ready."""
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1")
    phone = phones()
    customer = call("4930600001", hangup_after=6)
    task = task_of(serve, "4930600001", "active")
    agent_state(serve, "1", "on_call")
    kill_and_restart(serve, between=lambda: customer.wait(20))
    assert customer.wait(1).ok

    task = task_of(serve, "4930600001", "completed")
    assert task["agent"] == "1"
    assert events(serve, task["id"]) == ["add", "reserve", "connect", "complete"]
    eventually(lambda: not phone.open_calls(), 5, what="the agent leg hung up")
    agent_state(serve, "1", "ready", 5)


def test_a_call_still_up_after_the_restart_is_left_alone_and_ended_later(
        serve: Serve, phones: Phones) -> None:
    """Both legs are still bridged when the new serve starts: the call goes on, and when
    the caller hangs up the task completes and the agent's phone gets its BYE."""
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1")
    phone = phones()
    customer = call("4930600002", hangup_after=14)
    task_of(serve, "4930600002", "active")
    kill_and_restart(serve)

    task = task_of(serve, "4930600002")
    assert task["state"] == "active"
    assert agents(serve)["1"]["state"] == "on_call"
    assert len(phone.open_calls()) == 1  # not broken by the restart
    result = customer.wait(30)
    assert result.ok and result.hung_up_by == "local", result
    task = task_of(serve, "4930600002", "completed")
    assert events(serve, task["id"]) == ["add", "reserve", "connect", "complete"]
    eventually(lambda: not phone.open_calls(), 5, what="the agent leg hung up")
    agent_state(serve, "1", "ready", 5)


def test_a_persistent_line_and_its_call_survive_the_restart(serve: Serve,
                                                            phones: Phones) -> None:
    """A persistent agent talks on its line when serve dies: the new serve adopts the line
    and the call; the call ends normally and the next caller comes on the same line."""
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1", login=False)
    serve.cli("agents", "login", "1", "--reach", "PJSIP/agent1", "--mode", "persistent")
    phone = phones()
    customer = call("4930600007", hangup_after=10)
    task_of(serve, "4930600007", "active")
    kill_and_restart(serve)

    assert task_of(serve, "4930600007")["state"] == "active"
    result = customer.wait(30)
    assert result.ok and result.hung_up_by == "local", result
    task = task_of(serve, "4930600007", "completed")
    assert events(serve, task["id"]) == ["add", "reserve", "connect", "complete"]
    agent_state(serve, "1", "ready", 5)
    result = call("4930600008", hangup_after=2).wait(30)
    assert result.ok and result.hung_up_by == "local", result
    assert task_of(serve, "4930600008", "completed")["agent"] == "1"
    [invite] = phone.invites()
    assert phone.open_calls() == {invite.call_id}  # one line all along


def test_an_agent_hang_up_while_serve_was_dead_ends_the_call(serve: Serve,
                                                             phones: Phones) -> None:
    """The agent hangs up while serve is dead: the caller is hung up at the restart, the
    task completes and the agent is ready again."""
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1")
    phone = phones(hangup={"agent1"}, hangup_after=4)
    customer = call("4930600003", hangup_after=None)
    task_of(serve, "4930600003", "active")
    kill_and_restart(serve, between=lambda: eventually(lambda: not phone.open_calls(), 10,
                                                       what="the agent hung up"))
    result = customer.wait(15)
    assert result.ok and result.hung_up_by == "remote", result
    task = task_of(serve, "4930600003", "completed")
    assert events(serve, task["id"]) == ["add", "reserve", "connect", "complete"]
    agent_state(serve, "1", "ready", 5)


def test_a_callback_attempt_cut_by_the_restart_fails_and_is_retried(
        serve: Serve, tmp_path: Path) -> None:
    """Serve dies while the callback's customer phone rings: the new serve hangs up both
    legs and ends the attempt failed (the customer was dialed); the job retries with the next
    attempt's channel ids, which completes. Attempt 1 is never dialed again."""
    # The customer's phone rings 9 s (customers ring 2 x ring_timeout = 14 s): serve dies
    # and starts again meanwhile.
    serve.extra_env.update({**CALLBACK_FAST, "ACDKIT_AGENTS_RING_TIMEOUT": "7"})
    add_agents(serve, "1")
    serve.cli("agents", "pause", "1")
    serve.start()
    worker = Worker(serve, tmp_path / "worker.log").start()
    try:
        with agent_peer() as phone, \
                customer_peer(ring_after=9, hangup="*", hangup_after=2) as customers:
            phone.start()
            customers.start()
            booked = book_instant(serve)
            serve.cli("agents", "resume", "1")
            customers.wait_for_invites(1, timeout=30)
            kill_and_restart(serve)
            wait_for("completed", lambda: state_of(serve, booked["id"]) == "completed", 60)
            assert len(customers.invites()) == 2
            assert len(phone.invites()) == 2
        story = show(serve, booked["id"])
        attempts = [(a["attempt"], a["outcome"], a["detail"]) for a in story["attempts"]]
        assert attempts == [(1, "failed", "serve restarted"), (2, "answered", "")], attempts
        agent_state(serve, "1", "ready", 10)
    finally:
        worker.stop()
        sys.stdout.write(f"\n--- worker log ---\n{worker.log_path.read_text()[-3000:]}\n")


# ---- 2. callers stranded by a dead serve ----------------------------------------------------


def test_a_stranded_caller_is_adopted_and_keeps_its_task(serve: Serve, phones: Phones) -> None:
    """A caller queued when serve dies stays in the holding bridge; the new serve adopts it
    (same task, same place): an agent who logs in afterwards gets it."""
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1", login=False)
    phone = phones(hangup={"agent1"}, hangup_after=2)
    customer = call("4930600004", hangup_after=None)
    queued, _ = task_story(serve, task_of(serve, "4930600004", "queued")["id"])
    kill_and_restart(serve)

    eventually(lambda: "adopted" in serve.log(), 5, what="the caller adopted")
    serve.cli("agents", "login", "1", "--reach", "PJSIP/agent1")
    [invite] = phone.wait_for_invites(1, timeout=10)
    assert invite.from_user == "4930600004"
    result = customer.wait(20)
    assert result.ok and result.hung_up_by == "remote", result  # the agent hung up
    task, history = task_story(serve, task_of(serve, "4930600004", "completed")["id"])
    assert task["id"] == queued["id"]
    assert task["enqueued_at"] == queued["enqueued_at"]  # its place in line
    assert [h["event"] for h in history] == ["add", "reserve", "connect", "complete"]


def test_a_caller_reserved_when_serve_died_goes_back_in_line(serve: Serve,
                                                             phones: Phones) -> None:
    """Serve dies while the agent's phone rings: at the restart the ringing leg is hung up,
    the task goes back in line with its place and the caller is served next."""
    serve.extra_env.update({**FAST, "ACDKIT_AGENTS_RING_TIMEOUT": "8"})
    serve.start()
    add_agents(serve, "1")
    phone = phones(ring_after=4, hangup={"agent1"}, hangup_after=2)
    customer = call("4930600005", hangup_after=None)
    phone.wait_for_invites(1)
    task_of(serve, "4930600005", "reserved")
    kill_and_restart(serve)

    result = customer.wait(30)
    assert result.ok and result.hung_up_by == "remote", result
    task = task_of(serve, "4930600005", "completed")
    assert events(serve, task["id"]) == ["add", "reserve", "release", "reserve", "connect",
                                         "complete"]
    assert len(phone.invites()) == 2


def test_a_caller_in_the_ivr_when_serve_died_starts_the_ivr_again(serve: Serve) -> None:
    """No task yet (the caller had not chosen): the new serve runs the inbound flow again,
    so the caller's key press is heard and the caller queued."""
    serve.extra_env.update(FAST)
    serve.start()
    customer = caller("100", dtmf="w" * 16 + "1", hangup_after=None, caller_id="4930600009",
                      timeout=30).start()
    eventually(lambda: channel_of("4930600009"), 5, what="the caller in the app")
    kill_and_restart(serve)
    eventually(lambda: "stranded in the app (args inbound,main)" in serve.log(), 5,
               what="the IVR started again")
    task = task_of(serve, "4930600009", "queued", timeout=15)
    assert task["skill"] == "sales"
    customer.stop()


# ---- 3. queue.max_wait ----------------------------------------------------------------------


def test_a_caller_past_max_wait_goes_to_the_fallback(serve: Serve) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_QUEUE_MAX_WAIT": "3"})
    serve.start()
    add_agents(serve, "1", login=False)
    customer = call("4930600006", hangup_after=None, timeout=20)
    task_of(serve, "4930600006", "queued")
    channel = eventually(lambda: (c := channel_of("4930600006"))
                         and c["dialplan"]["context"] == "acdkit-fallback" and c, 10,
                         every=0.05, what="the caller in the fallback context")
    assert channel["dialplan"]["app_name"] != "Stasis"
    task, history = task_story(serve, task_of(serve, "4930600006", "expired")["id"])
    assert task["outcome"] == "max_wait"
    assert [h["event"] for h in history] == ["add", "expire"]
    assert 3.0 <= float(history[1]["ts"]) - task["enqueued_at"] < 6.0
    customer.stop()
