"""One malformed record must not stop the dispatcher (and so ``serve``): on a real Redis, a bad
agent hash and a bad task hash are set aside in the quarantine, listed by ``doctor``, and the
good task still reaches the good agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from poolkit import RULES, T0, StepClock, ready_agent, task

from acdkit.config import RedisSettings, Settings
from acdkit.core.agents import Agent
from acdkit.core.tasks import Task
from acdkit.dispatch import Dispatcher
from acdkit.doctor import check_quarantine
from acdkit.store import quarantine
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration


async def _bad_records(pool: Pool) -> None:
    """A ready agent whose skills are not JSON, a queued task (first in line) whose priority is
    no number, and a scheduled task that is due and has no state anyone knows."""
    await ready_agent(pool, "bad-agent", now=T0 - 60)
    await pool.redis.hset(pool.keys.agent("bad-agent"), "skills", "{not json")
    await pool.add_task(task("bad-task", "sales", T0 - 600))
    await pool.redis.hset(pool.keys.task("bad-task"), "priority", "high")
    await pool.add_task(task("bad-due", "sales", T0 - 600, state="scheduled", due_at=T0 - 1))
    await pool.redis.hset(pool.keys.task("bad-due"), "state", "limbo")


async def test_bad_agent_and_task_are_quarantined_and_the_good_task_is_served(
        pool: Pool, clock: StepClock, caplog: pytest.LogCaptureFixture) -> None:
    await _bad_records(pool)
    await pool.add_task(task("good-task", "sales", T0 - 10))
    await ready_agent(pool, "good-agent", now=T0 - 30)
    served: list[tuple[str, str]] = []
    done = asyncio.Event()

    async def on_reserved(agent: Agent, held: Task) -> None:
        served.append((agent.id, held.id))
        done.set()

    dispatcher = Dispatcher(pool, RULES, clock, on_reserved, sweep_interval=0.2)
    runner = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.wait_for(done.wait(), 5)
        for _ in range(3):  # more sweeps: the bad records keep being skipped, quietly
            await asyncio.sleep(0.25)
        assert not runner.done(), "the dispatcher stopped"
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    assert served == [("good-agent", "good-task")]
    listed = {(q.kind, q.record_id): q.reason for q in await pool.quarantine.entries()}
    assert set(listed) == {("agent", "bad-agent"), ("task", "bad-task"), ("task", "bad-due")}
    assert "skills" in listed[("agent", "bad-agent")]
    assert "priority" in listed[("task", "bad-task")]
    # Set aside, not deleted: the hashes stay for an admin; the queues no longer hold them.
    assert await pool.redis.exists(pool.keys.task("bad-task"))
    assert await pool.redis.zscore(pool.keys.queue("sales"), "bad-task") is None
    assert not await pool.redis.sismember(pool.keys.ready("sales"), "bad-agent")
    assert "Traceback" not in caplog.text


async def test_doctor_lists_the_quarantine(pool: Pool, clock: StepClock,
                                           redis_url: str) -> None:
    settings = Settings(redis=RedisSettings(url=redis_url))
    assert (await check_quarantine(settings)).status == "OK"
    await _bad_records(pool)
    await pool.list_agents()
    await pool.candidates(["sales"], 10)
    await pool.promote_due(clock.now())
    check = await check_quarantine(settings)
    assert check.status == "WARN"
    for name in ("agent bad-agent", "task bad-task", "task bad-due"):
        assert name in check.detail


async def test_a_flood_of_bad_records_logs_a_few_lines(pool: Pool, clock: StepClock,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    await ready_agent(pool, "good-agent")
    for n in range(50):
        await ready_agent(pool, f"bad-{n}")
        await pool.redis.hset(pool.keys.agent(f"bad-{n}"), "misses", "many")
    quarantine.say._windows.clear()  # the module's log window, shared by every test
    with caplog.at_level(logging.WARNING):
        agents = await pool.list_agents()
    assert [a.id for a in agents] == ["good-agent"]
    assert len(await pool.quarantine.entries()) == 50
    lines = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert 1 <= len(lines) <= 5


async def test_an_unreadable_task_held_for_its_agent_is_set_aside(pool: Pool) -> None:
    """Met in the agent's own line, it leaves every held line for the quarantine; the agent
    gets the next task."""
    await pool.add_task(task("held-bad", "sales", T0 - 600, preferred_agent="a1",
                             preferred_until=T0 + 60))
    await pool.redis.hset(pool.keys.task("held-bad"), "min_level", "high")
    await pool.add_task(task("good", "sales", T0 - 10))
    await ready_agent(pool, "a1", now=T0 - 30)
    made = await pool.claim_next(["a1"], T0)
    assert [(c.agent.id, c.task.id) for c in made.claimed] == [("a1", "good")]
    assert {(q.kind, q.record_id) for q in await pool.quarantine.entries()} == {
        ("task", "held-bad")}
    for key in (pool.keys.held_for("a1"), pool.keys.queue_held("sales"), pool.keys.held_end):
        assert await pool.redis.zscore(key, "held-bad") is None
