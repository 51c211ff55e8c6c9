"""Numbers for ``acdkit stats``: per skill, tasks waiting and the oldest wait, agents ready,
on a call and paused (with their reasons), tasks done in the last hour (completed tasks
counted from the audit stream, which is trimmed: on a very busy center the hour may be cut
short)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from acdkit.core.agents import Agent, AgentState
from acdkit.store.audit import AuditEntry
from acdkit.store.connection import guarded
from acdkit.store.pool import Pool

ON_CALL = frozenset({AgentState.RESERVED, AgentState.ON_CALL})
HOUR = 3_600.0


@dataclass(frozen=True)
class SkillRow:
    skill: str
    waiting: int
    oldest_wait: float | None  # seconds the longest-waiting task has waited
    ready: int
    on_call: int
    done_last_hour: int
    paused: int = 0
    pause_reasons: dict[str, int] = field(default_factory=dict)  # reason → paused agents


@guarded
async def done_since(pool: Pool, since: float) -> Counter[str]:
    """Tasks completed since ``since`` (epoch seconds), per skill."""
    entries = cast(list[tuple[str, dict[str, str]]], await pool.redis.xrange(
        pool.keys.kpi, min=f"{int(since * 1000)}-0", max="+"))
    done = (AuditEntry.parse(i, fields) for i, fields in entries)
    ids = [e.entity for e in done if e.event == "complete" and (e.kind or "task") == "task"]
    pipe = pool.redis.pipeline(transaction=False)
    for task_id in ids:
        pipe.hget(pool.keys.task(task_id), "skill")
    skills = cast(list[str | None], await pipe.execute()) if ids else []
    return Counter(s for s in skills if s)


async def skill_rows(pool: Pool, now: float) -> list[SkillRow]:
    """One row per skill that has a queue or an agent, sorted by skill."""
    agents = await pool.list_agents()
    known = {s for a in agents for s in a.skills}
    base = {s.skill: s for s in await pool.stats()}
    rows = {s.skill: s for s in await pool.stats(sorted(known | set(base)))}
    done = await done_since(pool, now - HOUR)
    return [SkillRow(
        skill, stat.waiting,
        None if stat.oldest_enqueued_at is None else max(0.0, now - stat.oldest_enqueued_at),
        stat.ready_agents, sum(1 for a in agents if skill in a.skills and a.state in ON_CALL),
        done.get(skill, 0), *_paused(agents, skill)) for skill, stat in sorted(rows.items())]


def _paused(agents: list[Agent], skill: str) -> tuple[int, dict[str, int]]:
    reasons = Counter(a.pause_reason or "paused" for a in agents
                      if skill in a.skills and a.state is AgentState.PAUSED)
    return sum(reasons.values()), dict(sorted(reasons.items()))
