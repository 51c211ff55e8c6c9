"""The claim scripts choose what core/routing.py chooses (lua/_routing.lua mirrors it).

On random pools in a real redis-server: ``claim_next`` gives each agent, in the order asked,
what ``routing.best_task`` picks among the tasks still queued; ``claim_for_task`` reserves the
eligible agent ready longest (``routing.eligible``, then state_since and id). Both leave a
live caller of another node than the claimer's alone (``routing.claimable_on``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from poolkit import RULES, T0, StepClock

from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.routing import best_task, claimable_on, eligible
from acdkit.core.tasks import Task, TaskKind
from acdkit.store.connection import connect
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration

SKILLS = ("sales", "support", "billing")
AGENT_IDS = ("a1", "a2", "a3", "a4")
LANGS = st.sampled_from([None, "fr", "en"])
NOW = T0 + 1_000
NODES = st.sampled_from(["", "a", "b"])


@dataclass(frozen=True)
class Case:
    agents: list[Agent]
    tasks: list[Task]
    ready_at: dict[str, float]  # when each agent became ready
    node: str  # the claimer's node


@st.composite
def cases(draw: st.DrawFn) -> Case:
    ids = draw(st.lists(st.sampled_from(AGENT_IDS), min_size=1, max_size=4, unique=True))
    agents = []
    for agent_id in ids:
        skills = draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 9), min_size=1))
        lang = draw(LANGS)
        agents.append(Agent(id=agent_id, skills=skills,
                            attributes={"lang": lang} if lang else {}))
    ready_at = {a.id: T0 + draw(st.sampled_from([0.0, 10.0, 20.0])) for a in agents}
    tasks = []
    for i in range(draw(st.integers(0, 12))):
        lang = draw(LANGS)
        preferred = draw(st.sampled_from([None, *AGENT_IDS, "away"]))
        until = draw(st.sampled_from([None, NOW - 5, NOW + 30])) if preferred else None
        tasks.append(Task(
            id=f"t{i}", kind=draw(st.sampled_from(list(TaskKind))),
            skill=draw(st.sampled_from(SKILLS)), created_at=T0,
            enqueued_at=T0 + i * 7.25 + draw(st.floats(0, 5)),
            priority=draw(st.integers(-5, 10)), min_level=draw(st.integers(1, 6)),
            required={"lang": lang} if lang else {},
            preferred_agent=preferred, preferred_until=until, node=draw(NODES)))
    return Case(agents, tasks, ready_at, draw(NODES))


async def _stored(url: str, case: Case) -> Pool:
    pool = Pool(await connect(url), RULES, clock=StepClock(NOW))
    for agent in case.agents:
        at = case.ready_at[agent.id]
        await pool.save_agent(agent, at)
        await pool.move_agent(agent.id, AgentEvent.LOGIN, at, reach=f"PJSIP/{agent.id}")
    await pool.add_tasks(case.tasks)
    return pool


def _flushed(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


async def _claim_next_agrees(url: str, case: Case) -> None:
    pool = await _stored(url, case)
    try:
        every = sorted(await pool.candidates(SKILLS, 100), key=lambda c: c[0])
        queued = [(s, t) for s, t in every if claimable_on(t, case.node)]
        agents = [a for a in await pool.list_agents() if a.id in case.ready_at]
        order = sorted(agents, key=lambda a: (case.ready_at[a.id], a.id))
        expected: dict[str, str] = {}
        places: dict[str, str] = {}  # task -> its place in its skill queue as it was taken
        for agent in order:
            pick = best_task(agent, queued, NOW)
            if pick is not None:
                expected[agent.id] = pick.id
                line = [t.id for _, t in every if t.skill == pick.skill]
                places[pick.id] = str(line.index(pick.id) + 1)
                queued = [(s, t) for s, t in queued if t.id != pick.id]
                every = [(s, t) for s, t in every if t.id != pick.id]
        made = await pool.claim_next([a.id for a in order], NOW, page=3, depth=100,
                                     node=case.node)
        assert {c.agent.id: c.task.id for c in made.claimed} == expected
        for claimed in made.claimed:  # what the claim returns is what it stored
            assert claimed.agent == await pool.get_agent(claimed.agent.id)
            assert claimed.task == await pool.get_task(claimed.task.id)
        # the reserve's audit entry (queue_log's CONNECT position) says where the task stood
        for task_id, place in places.items():
            [reserve] = [e for e in await pool.audit.history(task_id) if e.event == "reserve"]
            assert reserve.fields["pos"] == place
    finally:
        await pool.close()


async def _claim_for_task_agrees(url: str, case: Case) -> None:
    pool = await _stored(url, case)
    try:
        agents = await pool.list_agents()
        for task in case.tasks:
            stored = await pool.get_task(task.id)
            assert stored is not None
            fits = sorted((a for a in agents if eligible(a, stored, NOW)
                           and claimable_on(stored, case.node)),
                          key=lambda a: (a.state_since, a.id))
            made = await pool.claim_for_task(task.id, NOW, node=case.node)
            got = [c.agent.id for c in made.claimed]
            assert got == [a.id for a in fits[:1]], task
            agents = await pool.list_agents()
    finally:
        await pool.close()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_claim_next_gives_each_agent_what_routing_picks(redis_url: str, case: Case) -> None:
    _flushed(redis_url)
    asyncio.run(_claim_next_agrees(redis_url, case))


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_claim_for_task_reserves_the_agent_routing_picks(redis_url: str, case: Case) -> None:
    _flushed(redis_url)
    asyncio.run(_claim_for_task_agrees(redis_url, case))
