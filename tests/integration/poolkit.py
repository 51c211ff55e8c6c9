"""Helpers for tests against a real redis-server: a hand-moved clock, tasks, agents."""

from __future__ import annotations

from dataclasses import dataclass

from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.routing import PriorityRules
from acdkit.core.tasks import Task, TaskEvent, TaskKind
from acdkit.store.pool import Pool

T0 = 1_800_000_000.0
RULES = PriorityRules()


@dataclass
class StepClock:
    """A clock the test moves by hand."""

    t: float = T0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def task(task_id: str, skill: str = "sales", at: float = T0, **kw: object) -> Task:
    """A queued call task enqueued at ``at``."""
    return Task(id=task_id, kind=kw.pop("kind", TaskKind.CALL), skill=skill,  # type: ignore[arg-type]
                created_at=at, enqueued_at=at, **kw)  # type: ignore[arg-type]


async def ready_agent(pool: Pool, agent_id: str, skills: dict[str, int] | None = None,
                      now: float = T0, **kw: object) -> Agent:
    """Save an agent with ``skills`` (sales=5 by default) and log it in."""
    await pool.save_agent(Agent(id=agent_id, skills=skills or {"sales": 5}, **kw), now)  # type: ignore[arg-type]
    return await pool.move_agent(agent_id, AgentEvent.LOGIN, now, reach=f"PJSIP/{agent_id}")


async def kpi_day(pool: Pool, b: float) -> None:
    """c1 answered after 4 s (30 s talk, 5 s wrap-up), c2 abandoned after 2 s, a1 paused
    20 s for lunch. Times near the real clock: the KPI stream is read by entry id."""
    await ready_agent(pool, "a1", now=b)
    await pool.add_task(task("c1", at=b + 1), now=b + 1)
    await pool.add_task(task("c2", at=b + 10), now=b + 10)
    assert await pool.claim("a1", "c1", b + 3)
    await pool.move_agent("a1", AgentEvent.ANSWER, b + 5)
    await pool.move_task("c1", TaskEvent.CONNECT, b + 5)
    await pool.move_task("c2", TaskEvent.ABANDON, b + 12)
    await pool.move_task("c1", TaskEvent.COMPLETE, b + 35, outcome="customer hung up")
    await pool.move_agent("a1", AgentEvent.END, b + 35)
    await pool.move_agent("a1", AgentEvent.WRAPPED, b + 40)
    await pool.move_agent("a1", AgentEvent.PAUSE, b + 50, reason="lunch")
    await pool.move_agent("a1", AgentEvent.RESUME, b + 70)
