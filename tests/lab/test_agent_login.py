"""Agents sign in from a phone: `*50`, agent id and PIN by DTMF; the calling endpoint becomes
the reach, and a persistent agent's login call stays up as its line."""

from __future__ import annotations

import pytest
from tests.lab.center import FAST, agents, eventually, tasks
from tests.lab.conftest import Serve

from acdkit.labkit.sipp import AGENT_IP, caller

pytestmark = pytest.mark.lab


def test_a_persistent_agent_logs_in_from_its_phone_and_takes_a_call(serve: Serve) -> None:
    serve.extra_env.update(FAST)
    serve.cli("agents", "add", "5", "--name", "Eve", "--pin", "4321", "--skill", "sales",
              "--mode", "persistent")
    serve.start()
    # agent5's desk phone dials *50, keys 5# then 4321#, and stays on the line.
    phone = caller("*50", dtmf="ww5#ww4321#", caller_id="agent5", local_ip=AGENT_IP,
                   hangup_after=18, timeout=40).start()
    signed_in = eventually(lambda: (a := agents(serve).get("5")) and a["state"] == "ready"
                           and a, timeout=15, what="agent 5 ready")
    assert signed_in["reach"] == "PJSIP/agent5" and signed_in["mode"] == "persistent"
    customer = caller("100", dtmf="1", caller_id="12125550142", hangup_after=4).run()
    assert customer.ok, customer
    task = eventually(lambda: next((t for t in tasks(serve) if t["number"] == "12125550142"
                                    and t["state"] == "completed"), None),
                      timeout=10, what="the call completed")
    assert task["agent"] == "5"
    assert agents(serve)["5"]["state"] in ("wrap_up", "ready"), "the line stays up"
    result = phone.wait(40)
    assert result.ok, result
    eventually(lambda: agents(serve)["5"]["state"] == "logged_out", timeout=10,
               what="hanging up the line logs the agent out")


def test_a_wrong_pin_is_refused(serve: Serve) -> None:
    serve.extra_env.update(FAST)
    serve.cli("agents", "add", "6", "--pin", "4321", "--skill", "sales")
    serve.start()
    phone = caller("*50", dtmf="ww6#ww9999#ww6#ww9999#ww6#ww9999#", caller_id="agent6",
                   local_ip=AGENT_IP, timeout=60).run()
    assert phone.ok and phone.hung_up_by == "remote", phone
    assert agents(serve)["6"]["state"] == "logged_out"
    assert "agent login failed for id '6'" in serve.log()


def test_a_phone_outside_the_agent_endpoints_cannot_log_in(serve: Serve) -> None:
    """agents.endpoints = agent1,agent2: agent5's phone keys the right id and PIN and is still
    refused, because its endpoint is no agent endpoint (the reach policy of the login)."""
    serve.extra_env.update({**FAST, "ACDKIT_AGENTS_ENDPOINTS": "agent1,agent2"})
    serve.cli("agents", "add", "5", "--pin", "4321", "--skill", "sales")
    serve.start()
    phone = caller("*50", dtmf="ww5#ww4321#", caller_id="agent5", local_ip=AGENT_IP,
                   timeout=40).run()
    assert phone.ok and phone.hung_up_by == "remote", phone
    assert agents(serve)["5"]["state"] == "logged_out"
    assert "agent 5 login refused" in serve.log()
    assert "'agent5' is not an agent endpoint" in serve.log()
