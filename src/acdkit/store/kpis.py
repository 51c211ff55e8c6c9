"""The store's side of the KPIs (docs/kpis.md): the audit events of a window, read from the
pool's stream by entry id (ids are milliseconds, so a time range is an id range), and the
live figures the events cannot give (who is waiting now, the agents' current state).

Reading is a scan, not running counters: every audit entry is packed as one JSON field
(store/lua/_lib.lua, store/audit.py), which Redis serves about five times faster than
many-field entries; 100,000 events are read and computed in well under a second
(tests/bench/bench_kpis.py). The stream keeps ``store.audit.GLOBAL_MAXLEN`` entries: a window
older than its first entry is cut short.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.client import NEVER_DECODE

from acdkit.config import KpiConfig
from acdkit.core.agents import Agent
from acdkit.core.errors import ConfigError
from acdkit.core.kpi_journal import Journal, collect
from acdkit.core.kpis import Kpis, KpiSettings, SlFormula, figures
from acdkit.core.windows import Window
from acdkit.store.connection import guarded
from acdkit.store.pool import Pool

CHUNK = 10_000
# Entry ids come from Redis's clock, ``ts`` from the writer's: read a little past the window's
# end by id; the journal drops what is past it by ``ts``.
CLOCK_SLACK = 60.0
OPEN_REQUESTS = frozenset({"transcribing", "transcribed", "untranscribed", "replied"})


def _id(ts: float) -> str:
    return f"{int(ts * 1000)}-0"


def _raw_client(pool: Pool) -> aioredis.Redis:
    """A client on the pool's connections that leaves XRANGE replies as hiredis gives them
    (redis-py's stream parsing would cost more than reading)."""
    raw = aioredis.Redis(connection_pool=pool.redis.connection_pool)
    raw.set_response_callback("XRANGE", lambda response, **_: response)
    return raw


def _events(raw: list[tuple[bytes, list[bytes]]]) -> list[dict[str, Any]]:
    """The entries as ``core.kpi_journal.Event`` mappings (``ts`` made a float)."""
    # One json.loads for a whole chunk costs a third of one call per entry.
    packed: list[dict[str, Any]] = json.loads(b"[" + b",".join([flat[1] for _, flat in raw])
                                              + b"]")
    for entry in packed:
        entry["ts"] = float(entry.get("ts") or 0)
    return packed


@guarded
async def read_events(pool: Pool, start: float, end: float | None, *,
                      after: str = "") -> tuple[list[dict[str, Any]], str]:
    """Events written from ``start`` to ``end`` (or after the entry id ``after``), oldest first,
    from the KPI stream, and the id of the last one read (``after`` when none). Read in
    chunks; ids are milliseconds, so a time range is an id range; ``end`` None: no end)."""
    raw_client = _raw_client(pool)
    found: list[dict[str, Any]] = []
    low, last = (f"({after}" if after else _id(start)), after
    while True:
        raw = await raw_client.execute_command(  # type: ignore[no-untyped-call]
            "XRANGE", pool.keys.kpi, low, "+" if end is None else _id(end + CLOCK_SLACK),
            "COUNT", CHUNK,
            **{NEVER_DECODE: True})
        if raw:
            found += _events(raw)
            last = raw[-1][0].decode()
        if len(raw) < CHUNK:
            return found, last
        low = f"({last}"


@guarded
async def trimmed_before(pool: Pool) -> float | None:
    """When the oldest entry kept was written, if the KPI stream is full (it has been
    trimmed, so a window that starts earlier is cut short); None when nothing was trimmed."""
    if int(await pool.redis.xlen(pool.keys.kpi)) < pool.audit.maxlen:
        return None
    head = cast(list[tuple[str, Any]], await pool.redis.xrange(pool.keys.kpi, count=1))
    return int(head[0][0].split("-")[0]) / 1000 if head else None


@dataclass(frozen=True)
class Live:
    """What is true now: the agents, the oldest waiting call per skill, open requests."""

    agents: Sequence[Agent]
    oldest: dict[str, float]  # skill → enqueue time of its oldest queued task
    waiting: dict[str, int]  # skill → queued tasks
    open_requests: int


@guarded
async def read_live(pool: Pool) -> Live:
    agents = await pool.list_agents()
    stats = await pool.stats(sorted({s for a in agents for s in a.skills}
                                    | {s.skill for s in await pool.stats()}))
    return Live(agents, {s.skill: s.oldest_enqueued_at for s in stats
                         if s.oldest_enqueued_at is not None},
                {s.skill: s.waiting for s in stats}, await _open_requests(pool))


async def _open_requests(pool: Pool) -> int:
    index = f"{pool.keys.base}vrs"  # the keys of store/requests.py
    ids = cast(list[str], await pool.redis.zrange(index, 0, -1))
    if not ids:
        return 0
    pipe = pool.redis.pipeline(transaction=False)
    for task_id in ids:
        pipe.hget(f"{pool.keys.base}vr:{task_id}", "status")
    return sum(1 for status in await pipe.execute() if status in OPEN_REQUESTS)


async def read_journal(pool: Pool, window: Window, lookback: float,
                       live: Live | None = None) -> tuple[Journal, Live]:
    """The journal of ``window``: events from ``window.start - lookback`` (earlier
    milestones of the tasks the window sees) to its end, and the live figures."""
    live = live or await read_live(pool)
    events, _ = await read_events(pool, window.start - lookback, window.end)
    return collect(events, window, live.agents), live


def kpis_of(journal: Journal, live: Live, settings: KpiSettings, *, skill: str | None = None,
            agent: str | None = None) -> Kpis:
    """The figures of one scope, live parts filled in from ``live``."""
    oldest = [t for s, t in live.oldest.items() if skill is None or s == skill]
    return figures(journal, settings, skill=skill, agent=agent,
                   oldest_waiting=min(oldest) if oldest and agent is None else None,
                   open_requests=live.open_requests if skill is None and agent is None
                   else None)


async def read_kpis(pool: Pool, window: Window, settings: KpiSettings, lookback: float, *,
                    skill: str | None = None, agent: str | None = None) -> Kpis:
    """The KPIs of ``window`` for a skill, an agent or the whole center."""
    journal, live = await read_journal(pool, window, lookback)
    return kpis_of(journal, live, settings, skill=skill, agent=agent)


def kpi_settings(config: KpiConfig) -> KpiSettings:
    """The core's KPI settings from ``[kpis]``; ``ConfigError`` for an unknown formula."""
    try:
        formula = SlFormula(config.sl_formula)
    except ValueError:
        names = ", ".join(f.value for f in SlFormula)
        raise ConfigError("kpis.sl_formula", f"{config.sl_formula!r}: use one of {names}"
                          ) from None
    return KpiSettings(config.threshold_s, config.short_abandon_s, formula)
