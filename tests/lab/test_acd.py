"""The ACD end to end on the lab: SIPp callers dial 100 and press 1 (sales), SIPp phones
answer for the agents (agentN at 127.0.0.3:5070), `acdkit serve` connects them (DESIGN.md
sections 4.1 and 5: agent connection, per_call and persistent).

Agents are ``1``, ``2``… reached at ``PJSIP/agent1``…; what happened is read back from the
phones' SIP messages and from the CLI's ``--json`` output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from tests.lab.center import FAST, add_agents, agents, eventually, task_story, tasks
from tests.lab.conftest import Serve
from tests.lab.sipp import Peer, SippProcess, SippResult, caller

pytestmark = pytest.mark.lab

Phones = Callable[..., Peer]


def call(number: str, hangup_after: float | None = 3.0, timeout: float = 20.0) -> SippProcess:
    """A caller from ``number`` choosing sales (1), not started."""
    return caller("100", dtmf="1", hangup_after=hangup_after, caller_id=number, timeout=timeout)


def by_number(serve: Serve, number: str) -> dict[str, Any]:
    [task] = [t for t in tasks(serve) if t["number"] == number]
    return task


def ended(serve: Serve, number: str, state: str = "completed") -> dict[str, Any]:
    """The task of caller ``number`` once it is in ``state``."""
    return eventually(lambda: next((t for t in tasks(serve) if t["number"] == number
                                    and t["state"] == state), None),
                      5, what=f"the task of {number} {state}")


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
    serve.extra_env.update({**FAST, "ACDKIT_AGENTS_WHISPER": "true"})  # the real thing once
    serve.start()
    add_agents(serve, "1")

    # The caller hangs up: the agent's phone gets a BYE.
    phone = phones()
    result = call("4930200001", hangup_after=8).run()
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

    # The agent hangs up (after the whisper, in the conversation): the caller gets a BYE.
    phone = phones(hangup={"agent1"}, hangup_after=7)
    result = call("4930200002", hangup_after=None).run()
    assert result.ok and result.hung_up_by == "remote", result
    [invite] = phone.wait_for_invites(1)
    assert invite.from_user == "4930200002"
    sent, _ = bye_of(phone, invite.call_id)
    assert sent
    assert ended(serve, "4930200002")["agent"] == "1"
    ready_again(serve, "1")
