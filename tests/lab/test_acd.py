"""The ACD end to end on the lab: SIPp callers dial 100 and press 1 (sales), SIPp phones
answer for the agents (agentN at 127.0.0.3:5070), `acdkit serve` connects them (docs/architecture.md
§4 and §5: agent connection, per_call and persistent).

Agents are ``1``, ``2``… reached at ``PJSIP/agent1``…; what happened is read back from the
phones' SIP messages and from the CLI's ``--json`` output.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.lab.center import FAST, add_agents, agents, answered_at, eventually, task_story, tasks
from tests.lab.conftest import Serve, ari_call, lab_channels
from tests.lab.rtp import RtpSniffer

from acdkit.labkit.sipp import Peer, SippProcess, caller

pytestmark = pytest.mark.lab

Phones = Callable[..., Peer]


def call(number: str, hangup_after: float | None = 3.0, timeout: float = 20.0) -> SippProcess:
    """A caller from ``number`` choosing sales (1), not started."""
    return caller("100", dtmf="1", hangup_after=hangup_after, caller_id=number, timeout=timeout)


def by_number(serve: Serve, number: str) -> dict[str, Any]:
    [task] = [t for t in tasks(serve) if t["number"] == number]
    return task


def ended(serve: Serve, number: str, state: str = "completed",
          timeout: float = 5.0) -> dict[str, Any]:
    """The task of caller ``number`` once it is in ``state``."""
    return eventually(lambda: next((t for t in tasks(serve) if t["number"] == number
                                    and t["state"] == state), None),
                      timeout, what=f"the task of {number} {state}")


def ready_again(serve: Serve, agent_id: str, timeout: float = 5.0) -> dict[str, Any]:
    return eventually(lambda: (a := agents(serve)[agent_id])["state"] == "ready" and a,
                      timeout, what=f"agent {agent_id} ready")


def bye_of(phone: Peer, call_id: str) -> tuple[bool, float]:
    """(sent by the phone?, when) of the BYE that ended the phone's call ``call_id``."""
    byes = [m for m in phone.messages() if m.method == "BYE" and m.call_id == call_id]
    assert byes, f"no BYE in call {call_id}"
    return byes[0].sent, byes[0].time


# ---- (a) per_call: bridged, hang-ups both ways -----------------------------------------------


def test_per_call_agent_is_bridged_and_hang_ups_propagate(serve: Serve, phones: Phones) -> None:
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1")

    # The caller hangs up: the agent's phone gets a BYE.
    phone = phones()
    result = call("4930200001", hangup_after=3).run()
    assert result.ok and result.hung_up_by == "local", result
    [invite] = phone.wait_for_invites(1)
    assert (invite.user, invite.from_user) == ("agent1", "4930200001")
    eventually(lambda: not phone.open_calls(), 5, what="the agent leg ended")
    sent, _ = bye_of(phone, invite.call_id)
    assert not sent  # Asterisk hung the agent up
    task = ended(serve, "4930200001")
    assert task["agent"] == "1"
    _, history = task_story(serve, task["id"])
    assert [h["event"] for h in history] == ["add", "reserve", "connect", "complete"]
    assert ready_again(serve, "1")["task"] is None
    phone.stop()

    # The agent hangs up: the caller gets a BYE.
    phone = phones(hangup={"agent1"}, hangup_after=2)
    result = call("4930200002", hangup_after=None).run()
    assert result.ok and result.hung_up_by == "remote", result
    [invite] = phone.wait_for_invites(1)
    assert invite.from_user == "4930200002"
    sent, _ = bye_of(phone, invite.call_id)
    assert sent
    task = ended(serve, "4930200002")
    assert task["agent"] == "1"
    _, history = task_story(serve, task["id"])
    assert [h["event"] for h in history] == ["add", "reserve", "connect", "complete"]
    ready_again(serve, "1")


def test_the_whisper_comes_before_the_bridge(serve: Serve, phones: Phones) -> None:
    """The agent hears the caller's last digits and waited seconds (about 6 s of prompts)
    before being bridged; a caller who hangs up during the whisper ends the task abandoned
    and frees the agent (it once stayed on_call with the task active for ever)."""
    serve.extra_env.update({**FAST, "ACDKIT_AGENTS_WHISPER": "true"})
    serve.start()
    add_agents(serve, "1")
    phone = phones()

    with RtpSniffer(dst="127.0.0.3") as heard:
        result = call("4930200003", hangup_after=2).run()  # gone during the whisper
    assert result.ok, result
    [invite] = phone.wait_for_invites(1)
    task = ended(serve, "4930200003", "abandoned")
    _, history = task_story(serve, task["id"])
    assert [h["event"] for h in history] == ["add", "reserve", "abandon"]
    eventually(lambda: not phone.open_calls(), 5, what="the agent leg ended")
    assert not bye_of(phone, invite.call_id)[0]
    assert len(heard.packets) > 25  # the agent heard the start of the whisper
    ready_again(serve, "1")

    result = call("4930200004", hangup_after=10).run()
    assert result.ok, result
    _, invite = phone.wait_for_invites(2)
    answered = answered_at(phone, invite.call_id)
    _, history = task_story(serve, ended(serve, "4930200004")["id"])
    assert [h["event"] for h in history] == ["add", "reserve", "connect", "complete"]
    connected = float(history[2]["ts"])
    assert 4.0 < connected - answered < 9.0, connected - answered


def test_a_caller_hearing_its_position_is_bridged_when_its_agent_answers(
        serve: Serve, phones: Phones) -> None:
    """The position every second, each announcement longer than that: they never queue
    behind each other, and the one playing is cut short when the agent answers. Asterisk
    adds a channel to a bridge only after the media queued on it has played, so a caller
    once reached its agent only after every announcement queued while it waited, and the
    connect gave up after 5 s (the agent paused, the caller left waiting)."""
    serve.extra_env.update({**FAST, "ACDKIT_QUEUE_ANNOUNCE_EVERY": "1"})
    serve.start()
    add_agents(serve, "1", login=False)  # nobody free: the caller waits and hears its place
    phone = phones(hangup={"agent1"}, hangup_after=2)
    caller_ = call("4930200005", hangup_after=None, timeout=40).start()
    task = ended(serve, "4930200005", "queued", timeout=10)
    time.sleep(6)  # six announcements due, about 1.5 s each
    serve.cli("agents", "login", "1", "--reach", "PJSIP/agent1")
    [invite] = phone.wait_for_invites(1, timeout=10)
    assert caller_.wait(30).ok
    answered = answered_at(phone, invite.call_id)
    assert ended(serve, "4930200005")["id"] == task["id"]
    _, history = task_story(serve, task["id"])
    assert [h["event"] for h in history] == ["add", "reserve", "connect", "complete"]
    connected = float(history[2]["ts"])
    assert connected - answered < 1.0, f"bridged {connected - answered:.2f} s after the answer"


def test_a_caller_asterisk_does_not_bridge_in_time_goes_back_on_hold_and_is_served(
        serve: Serve, phones: Phones) -> None:
    """Media acdkit did not start keeps the caller from the agent's bridge for 11 s, past
    ARI's 5 s answer time: the agent's leg is hung up, the caller is held again, the task is
    back in line with its place and the agent paused (it answered but talked to nobody).
    Once resumed, the agent gets the same caller and they talk."""
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1", login=False)
    phone = phones(hangup={"agent1"}, hangup_after=2)
    caller_ = call("4930200006", hangup_after=None, timeout=90).start()
    task = ended(serve, "4930200006", "queued", timeout=10)
    [channel] = [c["id"] for c in lab_channels()
                 if c.get("caller", {}).get("number") == "4930200006"]  # type: ignore[union-attr]
    media = ",".join(["sound:queue-thereare", "number:12", "sound:queue-callswaiting"] * 2)
    status, _ = ari_call("POST", f"channels/{channel}/play/labtest-{channel}?media={media}")
    assert status == 201, status
    serve.cli("agents", "login", "1", "--reach", "PJSIP/agent1")
    [first] = phone.wait_for_invites(1, timeout=10)
    eventually(lambda: "not bridged to agent 1; back on hold" in serve.log(), 15,
               what="the caller back on hold")
    eventually(lambda: agents(serve)["1"]["state"] == "paused", 30, what="agent 1 paused")
    assert by_number(serve, "4930200006")["state"] == "queued"
    eventually(lambda: not phone.open_calls(), 30, what="the first agent leg ended")

    serve.cli("agents", "resume", "1")
    _, second = phone.wait_for_invites(2, timeout=30)
    assert second.call_id != first.call_id
    assert caller_.wait(30).ok  # the agent hung up after talking: the caller got a BYE
    assert ended(serve, "4930200006")["id"] == task["id"]
    _, history = task_story(serve, task["id"])
    story = [(h["event"], h["fields"].get("reason")) for h in history]
    assert story == [("add", None), ("reserve", None), ("release", "connect_failed"),
                     ("reserve", None), ("connect", None), ("complete", None)], story


# ---- (b), (c) persistent lines and switching modes ----------------------------------------------


def test_a_persistent_agent_keeps_one_line_for_many_calls(serve: Serve, phones: Phones) -> None:
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1", login=False)
    serve.cli("agents", "login", "1", "--reach", "PJSIP/agent1", "--mode", "persistent")
    phone = phones()
    numbers = ["4930300001", "4930300002", "4930300003"]
    for number in numbers:
        result = call(number, hangup_after=2).run()
        assert result.ok and result.hung_up_by == "local", result
        assert ended(serve, number)["agent"] == "1"
        ready_again(serve, "1")
    [invite] = phone.invites()
    assert invite.user == "agent1" and phone.open_calls() == {invite.call_id}

    # Hanging up the line logs the agent out.
    serve.cli("agents", "pause", "1")  # nothing new may reach it while the test hangs up
    [line] = [c for c in lab_channels() if str(c["name"]).startswith("PJSIP/agent1-")]
    ari_call("DELETE", f"channels/{line['id']}")
    eventually(lambda: agents(serve)["1"]["state"] == "logged_out", 5, what="agent 1 logged out")


def test_switching_modes_applies_from_the_next_call(serve: Serve, phones: Phones) -> None:
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1", mode="persistent")
    phone = phones()

    def served(number: str) -> int:
        """Call from ``number``, check it was served; the INVITEs the phone got so far."""
        result = call(number, hangup_after=2).run()
        assert result.ok, result
        assert ended(serve, number)["agent"] == "1"
        ready_again(serve, "1")
        return len(phone.invites())

    assert served("4930400001") == 1  # the line is called
    assert served("4930400002") == 1  # and kept
    serve.cli("agents", "mode", "1", "per_call")
    assert served("4930400003") == 2  # the line is hung up, a call for this task
    eventually(lambda: len(phone.open_calls()) == 0, 5, what="the line hung up")
    assert served("4930400004") == 3  # a call per task
    serve.cli("agents", "mode", "1", "persistent")
    assert served("4930400005") == 4  # a line again, which stays up
    assert len(phone.open_calls()) == 1
    assert agents(serve)["1"]["mode"] == "persistent"


# ---- (d) an agent who does not answer ------------------------------------------------------------


def test_a_missed_call_goes_to_the_next_agent_and_keeps_its_place(
        serve: Serve, phones: Phones) -> None:
    """Agent 1 lets the call ring out; meanwhile a second caller queues. When agent 2 comes
    back from a pause it gets the first caller: the missed task kept its place in line."""
    serve.extra_env.update({**FAST, "ACDKIT_AGENTS_RING_TIMEOUT": "2",
                            "ACDKIT_AGENTS_WRAP_UP": "30"})  # agent 1 stays out meanwhile
    serve.start()
    add_agents(serve, "1", "2")
    serve.cli("agents", "pause", "2")
    phone = phones(noanswer={"agent1"})

    first = call("4930500001", hangup_after=8).start()
    phone.wait_for_invites(1)
    second = call("4930500002", hangup_after=5).start()
    eventually(lambda: agents(serve)["1"]["misses"] == 1, 6, what="agent 1's miss")
    serve.cli("agents", "resume", "2")
    missed, taken = phone.wait_for_invites(2)
    results = first.wait(20), second.wait(20)
    assert all(r.ok for r in results), results

    assert (missed.user, missed.from_user) == ("agent1", "4930500001")
    assert (taken.user, taken.from_user) == ("agent2", "4930500001")
    assert len(phone.invites()) == 2
    task = ended(serve, "4930500001")
    _, history = task_story(serve, task["id"])
    story = [(h["event"], h["fields"].get("agent"), h["fields"].get("to")) for h in history]
    assert story == [("add", None, "queued"), ("reserve", "1", "reserved"),
                     ("release", "1", "queued"), ("reserve", "2", "reserved"),
                     ("connect", "2", "active"), ("complete", "2", "completed")], story
    assert history[2]["fields"]["reason"] == "no_answer"
    _, history = task_story(serve, ended(serve, "4930500002", "abandoned")["id"])
    assert [h["event"] for h in history] == ["add", "abandon"]
    agent = agents(serve)["1"]
    assert agent["state"] in ("wrap_up", "paused") and agent["misses"] == 1, agent


# ---- (e) priorities, and one call at a time per agent -----------------------------------------


def test_waiting_callers_are_served_by_priority_one_call_per_agent(
        serve: Serve, phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_PRIORITY_HOOK": "tests.lab.hooks:by_caller"})
    serve.start()
    add_agents(serve, "1", "2")
    for agent_id in ("1", "2"):
        serve.cli("agents", "pause", agent_id)
    phone = phones(hangup="*", hangup_after=2)

    arrival = ["4930600002", "4930600005", "4930600001", "4930600006", "4930600003",
               "4930600004"]  # neither first come first served nor its reverse
    callers = [call(number, hangup_after=None, timeout=60).start() for number in arrival]
    eventually(lambda: sum(t["state"] == "queued" for t in tasks(serve)) == 6, 10,
               what="six callers waiting")
    for agent_id in ("1", "2"):
        serve.cli("agents", "resume", agent_id)
    results = [c.wait(60) for c in callers]
    assert all(r.ok and r.hung_up_by == "remote" for r in results), results

    best_first = sorted(arrival, reverse=True)  # the hook: the higher last digit, the sooner
    listed = {t["number"]: t for t in tasks(serve)}
    assert {n: t["state"] for n, t in listed.items()} == dict.fromkeys(arrival, "completed")
    reserved = []
    for number in arrival:
        _, history = task_story(serve, listed[number]["id"])
        [reserve] = [h for h in history if h["event"] == "reserve"]
        reserved.append((float(reserve["ts"]), number))
    assert [number for _, number in sorted(reserved)] == best_first

    invites = phone.invites()
    assert len(invites) == 6
    rounds = [{i.from_user for i in invites[n:n + 2]} for n in range(0, 6, 2)]
    assert rounds == [set(best_first[n:n + 2]) for n in range(0, 6, 2)], invites
    for agent in ("agent1", "agent2"):
        calls = [(i.time, bye_of(phone, i.call_id)) for i in invites if i.user == agent]
        assert calls, f"{agent} got no call"
        for (_, (_, ended_at)), (next_invite, _) in itertools.pairwise(calls):
            assert next_invite > ended_at, f"{agent} had two calls at once: {calls}"
