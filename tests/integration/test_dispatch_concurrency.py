"""Wake-ups handled concurrently (dispatch.py) and the shared agent count of the overflow
view (ari/callback_offer.py), against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from poolkit import RULES, T0, StepClock, ready_agent, task

from acdkit.ari.callback_offer import AGENTS_TTL, LoggedIn
from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.tasks import Task, TaskState
from acdkit.dispatch import Dispatcher
from acdkit.store.claims import Round
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration


class SlowClaims(Pool):
    """The real pool; each claim of an agent for a new task takes a little longer, and the
    claims in flight are counted."""

    in_flight = 0
    most = 0
    results: list[Round]

    async def claim_for_task(self, task_id: str, now: float, *, node: str = "") -> Round:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.02)
            result = await super().claim_for_task(task_id, now, node=node)
            self.results.append(result)
            return result
        finally:
            self.in_flight -= 1


async def run_burst(pool: Pool, clock: StepClock, concurrency: int) -> SlowClaims:
    slow = SlowClaims(pool.redis, RULES, clock=clock)
    slow.results = []
    for i in range(12):
        await ready_agent(slow, f"a{i:02d}")
    got: list[tuple[str, str]] = []

    async def record(agent: Agent, held: Task) -> None:
        got.append((agent.id, held.id))

    d = Dispatcher(slow, RULES, clock, record, sweep_interval=3600, concurrency=concurrency)
    runner = asyncio.create_task(d.run())
    try:
        await asyncio.sleep(0.2)  # subscribed and swept
        for i in range(12):
            await slow.add_task(task(f"t{i:02d}"))  # each publishes task_added
        for _ in range(200):
            if len(got) == 12:
                break
            await asyncio.sleep(0.05)
        await d.wait_idle()
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    # Invariant 1: every task held by one agent, every agent holding one task.
    assert sorted(t for _, t in got) == [f"t{i:02d}" for i in range(12)]
    assert len({a for a, _ in got}) == 12
    for agent_id, task_id in got:
        stored = await slow.get_task(task_id)
        assert stored is not None and stored.state is TaskState.RESERVED
        assert stored.agent_id == agent_id
    return slow


async def test_wake_ups_are_handled_concurrently_without_double_assignment(
        pool: Pool, clock: StepClock) -> None:
    slow = await run_burst(pool, clock, concurrency=16)
    assert slow.most > 1
    # The script chooses and claims in one step: concurrent wake-ups never collide.
    assert [len(r.claimed) for r in slow.results] == [1] * 12


async def test_concurrency_one_handles_one_wake_up_at_a_time(pool: Pool,
                                                             clock: StepClock) -> None:
    slow = await run_burst(pool, clock, concurrency=1)
    assert slow.most == 1


class CountingPool(Pool):
    reads = 0

    async def list_agents(self) -> list[Agent]:
        self.reads += 1
        await asyncio.sleep(0.01)
        return await super().list_agents()


async def test_the_logged_in_count_is_read_once_per_ttl_for_all_callers(
        pool: Pool, clock: StepClock) -> None:
    counting = CountingPool(pool.redis, RULES, clock=clock)
    await ready_agent(counting, "a1", {"sales": 5, "support": 3})
    await ready_agent(counting, "a2", {"sales": 5})
    logged_in = LoggedIn(counting)
    views = await asyncio.gather(*(logged_in.per_skill(T0) for _ in range(20)))
    assert counting.reads == 1
    assert all(v["sales"] == 2 and v["support"] == 1 for v in views)
    await counting.move_agent("a2", AgentEvent.LOGOUT, T0)
    assert (await logged_in.per_skill(T0 + AGENTS_TTL / 2))["sales"] == 2
    assert counting.reads == 1
    assert (await logged_in.per_skill(T0 + AGENTS_TTL))["sales"] == 1
    assert counting.reads == 2
