"""Outbound work, for real: a missed call becomes a follow-up that an agent dials, imported
leads are given by priority, a number on the do-not-call list is never dialed. `acdkit serve`
and `acdkit worker` run as processes; agents and customers (127.0.0.4:5080) are SIPp phones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.lab.center import FAST, cli_json, eventually, task_story, tasks
from tests.lab.conftest import Serve, busy_agent_center
from tests.lab.observer import Observed, observe_channels

from acdkit.labkit.sipp import Peer, agent_peer, caller, customer_peer

pytestmark = pytest.mark.lab

OUTBOUND = {**FAST, "ACDKIT_AGENTS_RING_TIMEOUT": "5", "ACDKIT_AGENTS_WRAP_UP": "1",
            "ACDKIT_OUTBOUND_INTERVALS": "2,2", "ACDKIT_OUTBOUND_MAX_ATTEMPTS": "2"}


@pytest.fixture
def center(serve: Serve, tmp_path: Path) -> Iterator[Serve]:
    """serve + worker; agent 1 (sales) signed in at PJSIP/agent1 and paused."""
    for serve_, _ in busy_agent_center(serve, tmp_path, OUTBOUND):
        yield serve_


def import_leads(serve: Serve, tmp_path: Path, rows: str) -> dict[str, Any]:
    path = tmp_path / "leads.csv"
    path.write_text("number,name,priority\n" + rows, encoding="utf-8")
    [summary] = cli_json(serve, "tasks", "import", str(path), "--skill", "sales")
    return dict(summary)


def outbound(serve: Serve) -> dict[str, dict[str, Any]]:
    """The outbound tasks by number."""
    return {t["number"]: t for t in tasks(serve) if t["kind"] == "outbound"}


def agent_first(seen: Observed, agents: Peer, dialed: int = 1) -> None:
    """The agent answered its leg before each of the ``dialed`` customers was dialed, in
    Asterisk's own order (SIPp's stamps cannot order two peers' messages:
    tests/lab/observer.py says why)."""
    assert agents.invites()[0].user == "agent1"
    assert len(seen.wait_for_customer_legs(dialed)) >= dialed, seen.events
    assert seen.customers_dialed_early() == [], seen.events


def test_a_missed_call_becomes_a_follow_up_that_an_agent_dials(center: Serve) -> None:
    serve = center
    serve.stop()
    serve.extra_env["ACDKIT_AGENTS_WHISPER"] = "true"  # the ob-* whisper prompts play
    serve.start()
    with observe_channels() as seen, agent_peer() as agents, \
            customer_peer(hangup="*", hangup_after=2) as customers:
        agents.start()
        customers.start()
        # IVR "1" (sales); nobody is free; the caller hangs up after 4 s in the queue.
        result = caller("100", dtmf="1", caller_id="2125550142", hangup_after=4,
                        timeout=30).run()
        assert result.ok, result
        follow = eventually(lambda: outbound(serve).get("+12125550142"), 10,
                            what="the follow-up task")
        task, history = task_story(serve, follow["id"])
        assert (task["state"], task["source"]) == ("queued", "missed-call")
        assert task["attributes"]["reason"] == "abandoned"
        assert [t["state"] for t in tasks(serve) if t["kind"] == "call"] == ["abandoned"]
        assert "follow_up" in [h["event"] for h in history]
        serve.cli("agents", "resume", "1")
        invite = customers.wait_for_invites(1, timeout=40)[0]
        assert invite.user == "12125550142"
        agent_first(seen, agents)
        eventually(lambda: task_story(serve, follow["id"])[0]["state"] == "completed", 30,
                   what="the follow-up completed")
    events = [h["event"] for h in task_story(serve, follow["id"])[1]]
    assert "attempt_answered" in events
    assert len(customers.invites()) == 1


def test_an_imported_high_priority_lead_is_given_before_a_low_one(center: Serve,
                                                                  tmp_path: Path) -> None:
    serve = center
    summary = import_leads(serve, tmp_path, "2125550161,Low,1\n2125550162,High,50\n"
                                            "2125550199,Listed,90\n")
    assert (summary["added"], summary["rejected"]) == (2, 1)  # +12125550199: do_not_call
    assert summary["rejects"] == [{"line": 4, "reason": "number: do_not_call"}]
    high = outbound(serve)["+12125550162"]
    [explained] = cli_json(serve, "tasks", "explain", high["id"])
    assert explained["priority"]["stored_priority"] == 50
    assert explained["compliance"]["dialable_now"] is True
    with observe_channels() as seen, agent_peer() as agents, \
            customer_peer(hangup="*", hangup_after=1) as customers:
        agents.start()
        customers.start()
        serve.cli("agents", "resume", "1")
        invites = customers.wait_for_invites(2, timeout=60)
        assert [i.user for i in invites] == ["12125550162", "12125550161"]
        agent_first(seen, agents, dialed=2)
        eventually(lambda: all(t["state"] == "completed" for t in outbound(serve).values()),
                   30, what="both leads completed")
    again = import_leads(serve, tmp_path, "2125550161,Low,1\n2125550162,High,50\n")
    assert (again["added"], again["already"]) == (0, 2)


def test_a_number_on_the_do_not_call_list_is_never_dialed(center: Serve,
                                                          tmp_path: Path) -> None:
    serve = center
    import_leads(serve, tmp_path, "2125550171,Listed later,50\n2125550172,Fine,1\n")
    serve.cli("dnc", "add", "212-555-0171")
    listed = outbound(serve)["+12125550171"]
    [explained] = cli_json(serve, "tasks", "explain", listed["id"])
    assert explained["compliance"]["dialable_now"] is False
    assert explained["compliance"]["reason"] == "do_not_call"
    assert explained["compliance"]["do_not_call_list"] is True
    with agent_peer() as agents, customer_peer(hangup="*", hangup_after=1) as customers:
        agents.start()
        customers.start()
        serve.cli("agents", "resume", "1")
        invite = customers.wait_for_invites(1, timeout=40)[0]
        assert invite.user == "12125550172"
        refused = eventually(lambda: task_story(serve, listed["id"])[0]["state"] == "failed"
                             and task_story(serve, listed["id"])[0], 30,
                             what="the listed lead refused")
        assert refused["outcome"] == "refused: do_not_call"
        eventually(lambda: outbound(serve)["+12125550172"]["state"] == "completed", 30,
                   what="the other lead completed")
        assert [i.user for i in customers.invites()] == ["12125550172"]
    assert agents.invites(), "the agent was rung for the dialable lead"


def test_the_agent_presses_9_during_the_call_to_schedule_a_follow_up(center: Serve,
                                                                     tmp_path: Path) -> None:
    serve = center
    import_leads(serve, tmp_path, "2125550181,Call me later,5\n")
    lead = outbound(serve)["+12125550181"]
    with agent_peer(dtmf_users="*", dtmf="wwww9") as agents, \
            customer_peer(hangup="*", hangup_after=6) as customers:
        agents.start()
        customers.start()
        serve.cli("agents", "resume", "1")
        assert customers.wait_for_invites(1, timeout=40)[0].user == "12125550181"
        later = eventually(lambda: [t for t in tasks(serve) if t["kind"] == "outbound"
                                    and t["state"] == "scheduled"], 30,
                           what="the agent's follow-up")
        eventually(lambda: task_story(serve, lead["id"])[0]["state"] == "completed", 30,
                   what="the lead completed")
    [follow] = later
    task, _ = task_story(serve, follow["id"])
    assert (task["number"], task["source"]) == ("+12125550181", "agent")
    assert task["attributes"]["after_task"] == lead["id"]
    assert task["due_at"] > task["created_at"] + 3_600
    assert len(customers.invites()) == 1  # scheduled for later, not dialed now
