"""Ratings on the lab: a caller chooses its agent by DTMF, a caller rates the agent in the
post-call survey, a caller changes and deletes its rating on the ratings line (110), an agent
does the same for its customer, a persistent agent ends a call with # and keeps its line.

Ratings that the choice depends on are seeded in the test's Redis through the store (the
same API `serve` uses); everything else goes through SIPp, Asterisk and `acdkit serve`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from tests.lab.center import FAST, add_agents, cli_json, eventually, task_story, tasks
from tests.lab.conftest import Serve

from acdkit.core.ratings import Direction, Interaction, Rating
from acdkit.core.routing import PriorityRules
from acdkit.labkit.sipp import AGENT_IP, Peer, caller
from acdkit.store.audit import AuditEntry
from acdkit.store.connection import connect
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore

pytestmark = pytest.mark.lab

Phones = Callable[..., Peer]
CUSTOMER = "4930123456"  # the SIPp caller's number


def on_store(serve: Serve, work: Callable[[RatingStore], Any]) -> Any:
    """Run ``work(store)`` on the ratings of the test's Redis."""

    async def run() -> Any:
        store = RatingStore(Pool(await connect(serve.redis_url), PriorityRules()))
        try:
            return await work(store)
        finally:
            await store.pool.close()

    return asyncio.run(run())


def seed(serve: Serve, task_id: str, agent_id: str, number: str, **scores: int) -> None:
    """An interaction that happened, rated by its customer with ``scores``."""

    async def work(store: RatingStore) -> None:
        await store.record_served(Interaction(task_id, agent_id, number, "sales", 1.0))
        await store.rate(task_id=task_id, rater=number, scores=scores, now=2.0)

    on_store(serve, work)


def agent_row(serve: Serve, agent_id: str) -> dict[str, Any]:
    rows = {row["id"]: row for row in cli_json(serve, "ratings")}
    return rows[agent_id]  # type: ignore[no-any-return]


def test_the_caller_chooses_agent_2_of_3_and_gets_it_although_others_are_free(
        serve: Serve, phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_RATINGS_CHOOSE_AGENT": "3",
                            "ACDKIT_RATINGS_PREFERRED_WAIT": "60"})
    add_agents(serve, "1", "2", "3")
    seed(serve, "old-1", "3", "4930000001", attitude=5, expertise=5, availability=5)
    seed(serve, "old-2", "2", "4930000002", attitude=4, expertise=4, availability=4)
    serve.start()
    agents = phones(hangup="*", hangup_after=2)
    # Offered best first: agent 3 (press 1), agent 2 (press 2), agent 1 (press 3, unrated).
    result = caller("100", dtmf="1" + "w" * 6 + "2", caller_id=CUSTOMER, timeout=45).run()
    assert result.ok, result
    assert [i.user for i in agents.invites()] == ["agent2"]
    [mine] = [t for t in tasks(serve) if t["number"] == CUSTOMER]
    task, _ = task_story(serve, mine["id"])
    assert (task["preferred_agent"], task["agent_id"], task["state"]) == ("2", "2", "completed")


def test_the_caller_rates_the_agent_after_it_hung_up(serve: Serve, phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_RATINGS_SURVEY": "true",
                            "ACDKIT_RATINGS_KEY_TIMEOUT": "8"})
    add_agents(serve, "1")
    serve.start()
    phones(hangup="*", hangup_after=2)
    assert agent_row(serve, "1")["ratings"] == 0
    # Sales at once; the agent hangs up 2 s after answering; the survey's keys come after
    # the intro: 5 (attitude), 4 (expertise), 9 (invalid: asked again), 3 (availability).
    keys = "1" + "w" * 16 + "5" + "w" * 4 + "4" + "w" * 4 + "9" + "w" * 6 + "3"
    result = caller("100", dtmf=keys, caller_id=CUSTOMER, timeout=60).run()
    assert result.ok, result
    assert result.find("BYE", sent=False), "acdkit hangs up after the survey"
    row = eventually(lambda: (r := agent_row(serve, "1"))["ratings"] == 1 and r, 5,
                     what="the rating stored")
    assert {c: s["mean"] for c, s in row["categories"].items()} == \
        {"attitude": 5.0, "expertise": 4.0, "availability": 3.0}
    assert row["overall"]["count"] == 3
    [mine] = tasks(serve)
    assert mine["state"] == "completed"
    _, history = task_story(serve, mine["id"])
    assert "rating_added" in [h["event"] for h in history]


def test_the_caller_changes_then_deletes_its_rating_by_phone(serve: Serve,
                                                             phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_RATINGS_KEY_TIMEOUT": "8"})
    serve.start()
    seed(serve, "served-1", "2", CUSTOMER, attitude=2)
    assert agent_row(serve, "2")["overall"]["mean"] == 2.0
    # 1 = rate: 5, 5, 5; then the same call again: 2 = delete; then # = finish.
    keys = "w" * 4 + "1" + "w" * 3 + "5" + "w" * 3 + "5" + "w" * 3 + "5" + "w" * 8 + "2" \
        + "w" * 6 + "#"
    result = caller("110", dtmf=keys, caller_id=CUSTOMER, timeout=60).run()
    assert result.ok, result

    async def story(store: RatingStore) -> tuple[list[AuditEntry], object]:
        return (await store.pool.audit.history("served-1"),
                await store.get("served-1", Direction.OF_AGENT))

    history, current = on_store(serve, story)
    events = [(e.event, e.fields.get("scores", "")) for e in history]
    assert events == [("rating_added", "attitude=2"),
                      ("rating_changed", "attitude=5,availability=5,expertise=5"),
                      ("rating_deleted", "")]
    assert current is None
    row = agent_row(serve, "2")
    assert (row["ratings"], row["overall"]["count"]) == (0, 0)
    assert json.loads(serve.cli("ratings", "served", "--number", CUSTOMER,
                                "--json").stdout)[0]["scores"] is None


def test_the_agent_rates_the_customer_after_it_hung_up(serve: Serve, phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_RATINGS_AGENT_PROMPT": "true",
                            "ACDKIT_RATINGS_KEY_TIMEOUT": "8"})
    add_agents(serve, "1")
    serve.start()
    # The agent keys 4 some 6 s after answering: after the caller left (3 s after its "1").
    phones(dtmf_users="agent1", dtmf="w" * 12 + "4")
    result = caller("100", dtmf="1", hangup_after=3, caller_id=CUSTOMER, timeout=30).run()
    assert result.ok, result
    rated = eventually(lambda: cli_json(serve, "ratings", "customers"), 15,
                       what="the customer's rating")
    assert [(r["number"], r["mean"], r["count"]) for r in rated] == [(CUSTOMER, 4.0, 1)]
    eventually(lambda: cli_json(serve, "agents", "list")[0]["state"] == "ready", 10,
               what="the agent ready after rating")
    [mine] = tasks(serve)
    assert mine["state"] == "completed"


def test_the_agent_hears_the_rating_and_declines_with_star(serve: Serve,
                                                           phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_AGENTS_WHISPER": "true",
                            "ACDKIT_AGENTS_WRAP_UP": "6"})
    add_agents(serve, "1", "2")  # agent 1 is ready longest: it is offered the call first

    async def rated_before(store: RatingStore) -> None:
        await store.record_served(Interaction("before", "9", CUSTOMER, "sales", 1.0))
        await store.rate(task_id="before", rater="9", scores={"overall": 5}, now=2.0)

    on_store(serve, rated_before)
    serve.start()
    agents = phones(dtmf_users="agent1", dtmf="ww*", hangup="agent2", hangup_after=16)
    # The whisper with the rating lasts about 10 s: agent 2 talks after it, then hangs up.
    result = caller("100", dtmf="1", caller_id=CUSTOMER, timeout=60).run()
    assert result.ok, result
    assert [i.user for i in agents.invites()] == ["agent1", "agent2"]
    [mine] = tasks(serve)
    task, history = task_story(serve, mine["id"])
    assert task["customer_rating"] == 20 / 6
    assert (task["agent_id"], task["state"]) == ("2", "completed")
    assert any(h["fields"].get("reason") == "declined" for h in history)
    assert {r["id"]: r["declines"] for r in cli_json(serve, "ratings")}["1"] == 1
    assert "declined by agent 1" in serve.log()


def test_a_persistent_agent_ends_the_call_with_pound_and_keeps_its_line(
        serve: Serve, phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_RATINGS_SURVEY": "true",
                            "ACDKIT_RATINGS_AGENT_PROMPT": "true",
                            "ACDKIT_RATINGS_KEY_TIMEOUT": "8"})
    add_agents(serve, "1", mode="persistent")
    serve.start()
    # The line answers; 4 s later the agent presses # (end the call), 3 s later 4 (its
    # rating of the customer, asked on the line while the caller answers the survey).
    phone = phones(dtmf_users="agent1", dtmf="w" * 8 + "#" + "w" * 6 + "4")
    # The caller's survey keys come well after the #: 5, 4, then 3.
    keys = "1" + "w" * 26 + "5" + "w" * 4 + "4" + "w" * 4 + "3"
    result = caller("100", dtmf=keys, caller_id=CUSTOMER, timeout=60).run()
    assert result.ok, result
    assert result.find("BYE", sent=False), "acdkit hangs the caller up after the survey"
    row = eventually(lambda: (r := agent_row(serve, "1"))["ratings"] == 1 and r, 5,
                     what="the caller's rating stored")
    assert {c: s["mean"] for c, s in row["categories"].items()} == \
        {"attitude": 5.0, "expertise": 4.0, "availability": 3.0}
    rated = cli_json(serve, "ratings", "customers")
    assert [(r["number"], r["mean"]) for r in rated] == [(CUSTOMER, 4.0)]
    [mine] = tasks(serve)
    task, _ = task_story(serve, mine["id"])
    assert (task["state"], task["outcome"]) == ("completed", "agent ended the call")
    eventually(lambda: cli_json(serve, "agents", "list")[0]["state"] == "ready", 10,
               what="the agent ready after rating")
    [line] = phone.invites()
    assert phone.open_calls() == {line.call_id}, "the agent's line stays up"
    assert "agent 1 ended the call, line kept" in serve.log()


def test_a_persistent_agent_rates_the_customer_who_hung_up_and_keeps_its_line(
        serve: Serve, phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_RATINGS_AGENT_PROMPT": "true",
                            "ACDKIT_RATINGS_KEY_TIMEOUT": "8"})
    add_agents(serve, "1", mode="persistent")
    serve.start()
    phone = phones(dtmf_users="agent1", dtmf="w" * 12 + "2")  # after the caller left
    result = caller("100", dtmf="1", hangup_after=3, caller_id=CUSTOMER, timeout=30).run()
    assert result.ok, result
    rated = eventually(lambda: cli_json(serve, "ratings", "customers"), 15,
                       what="the customer's rating")
    assert [(r["number"], r["mean"]) for r in rated] == [(CUSTOMER, 2.0)]
    eventually(lambda: cli_json(serve, "agents", "list")[0]["state"] == "ready", 10,
               what="the agent ready after rating")
    [line] = phone.invites()
    assert phone.open_calls() == {line.call_id}, "the agent's line stays up"


def test_an_agent_changes_its_rating_of_a_customer_on_the_ratings_line(
        serve: Serve, phones: Phones) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_RATINGS_KEY_TIMEOUT": "8"})
    add_agents(serve, "1")

    async def rated_by_agent(store: RatingStore) -> None:
        await store.record_served(Interaction("served-9", "1", CUSTOMER, "sales", 1.0))
        await store.rate(task_id="served-9", rater="1", scores={"overall": 2}, now=2.0)

    on_store(serve, rated_by_agent)
    serve.start()
    # agent1's desk phone dials 110: 1 = change, 5, then # = finish.
    keys = "w" * 4 + "1" + "w" * 3 + "5" + "w" * 8 + "#"
    result = caller("110", dtmf=keys, caller_id="agent1", local_ip=AGENT_IP, timeout=60).run()
    assert result.ok, result

    async def story(store: RatingStore) -> tuple[list[AuditEntry], Rating | None]:
        return (await store.pool.audit.history("served-9"),
                await store.get("served-9", Direction.OF_CUSTOMER))

    history, current = on_store(serve, story)
    assert [(e.event, e.fields.get("scores", "")) for e in history] == \
        [("rating_added", "overall=2"), ("rating_changed", "overall=5")]
    assert current is not None and (current.rater, dict(current.scores)) == ("1", {"overall": 5})
    rated = cli_json(serve, "ratings", "customers")
    assert [(r["number"], r["mean"], r["count"]) for r in rated] == [(CUSTOMER, 5.0, 1)]


def test_the_ratings_line_refuses_a_wrong_pin_and_takes_the_right_one(serve: Serve) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_RATINGS_CUSTOMER_PIN": "true",
                            "ACDKIT_RATINGS_KEY_TIMEOUT": "6"})
    serve.start()
    seed(serve, "served-1", "2", CUSTOMER, attitude=2)
    serve.cli("ratings", "pin", CUSTOMER, "--pin", "4711")
    wrong = caller("110", dtmf="w" * 4 + "1111#" + "w" * 8 + "2222#", caller_id=CUSTOMER,
                   timeout=40).run()
    assert wrong.ok and wrong.hung_up_by == "remote", wrong
    assert serve.log().count("wrong PIN for") == 2
    # The right PIN, then 1 = rate: 5, 5, 5, then # = finish.
    keys = "w" * 4 + "4711#" + "w" * 8 + "1" + "w" * 3 + "5" + "w" * 3 + "5" + "w" * 3 + "5" \
        + "w" * 8 + "#"
    right = caller("110", dtmf=keys, caller_id=CUSTOMER, timeout=60).run()
    assert right.ok, right
    assert serve.log().count("wrong PIN for") == 2
    assert agent_row(serve, "2")["overall"]["mean"] == 5.0
