"""The wallboard (``/wallboard``, ``?big=1`` for a wall TV): per skill what waits and how the
day goes, and the agents by state with their pause reasons; live over SSE.

``board(...)`` is the one function that computes the figures: today it reads the pool
(stats.py) and tallies the day's audit; the KPI module replaces its body when it lands.
Service level here is answered within ``SL_SECONDS`` / (answered + abandoned), the style of
app_queue's reports; ASA the mean wait of answered calls (docs/pages.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web

from acdkit.core.agents import AgentState
from acdkit.core.tasks import TaskKind, TaskState
from acdkit.stats import skill_rows
from acdkit.store.pool import Pool
from acdkit.web.context import Web, of
from acdkit.web.events import stream

SL_SECONDS = 20.0
FORMULA = f"SL = answered within {SL_SECONDS:.0f} s / (answered + abandoned); ASA = mean wait"
_SCAN = 5_000  # waiting and scheduled tasks read for the callback and request counts


@dataclass
class SkillDay:
    answered: int = 0
    within: int = 0
    wait_total: float = 0.0
    abandoned: int = 0


@dataclass(frozen=True)
class SkillFigures:
    skill: str
    waiting: int
    oldest_since: float | None  # enqueue time of the longest-waiting task (the page ticks)
    service_level: float | None
    asa: float | None
    abandon_rate: float | None
    callbacks_pending: int  # scheduled
    callbacks_due: int  # in line now
    requests_open: int
    ready: int
    on_call: int


@dataclass(frozen=True)
class Board:
    at: float
    skills: list[SkillFigures]
    agents: dict[str, int]  # state → how many
    pauses: dict[str, int]  # reason → how many paused agents
    formula: str = FORMULA


@dataclass
class DayTally:
    """The day's answered and abandoned tasks per skill, read from the audit stream a
    little more at each call (only entries after the last one read)."""

    day: str = ""
    last_id: str = "-"
    skills: dict[str, SkillDay] = field(default_factory=dict)

    async def update(self, pool: Pool, now: float, zone: ZoneInfo) -> dict[str, SkillDay]:
        local = dt.datetime.fromtimestamp(now, zone)
        if local.date().isoformat() != self.day:
            midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
            self.day, self.skills = local.date().isoformat(), {}
            self.last_id = f"{int(midnight.timestamp() * 1000)}-0"
            start = self.last_id
        else:
            start = f"({self.last_id}"
        while True:
            entries = cast(list[tuple[str, dict[str, str]]], await pool.redis.xrange(
                pool.keys.audit, min=start, count=2_000))
            if not entries:
                return self.skills
            await self._count(pool, entries)
            self.last_id = entries[-1][0]
            start = f"({self.last_id}"

    async def _count(self, pool: Pool, entries: list[tuple[str, dict[str, str]]]) -> None:
        wanted = [(f["entity"], f["event"], float(f.get("ts", 0))) for _, f in entries
                  if f.get("kind") == "task" and f.get("event") in ("connect", "abandon")]
        pipe = pool.redis.pipeline(transaction=False)
        for task_id, _, _ in wanted:
            pipe.hmget(pool.keys.task(task_id), ["skill", "kind", "enqueued_at"])
        for (_, event, ts), (skill, kind, enq) in zip(wanted, await pipe.execute(),
                                                      strict=True):
            if not skill or kind != TaskKind.CALL:
                continue
            day = self.skills.setdefault(skill, SkillDay())
            if event == "abandon":
                day.abandoned += 1
                continue
            wait = max(0.0, ts - float(enq or ts))
            day.answered += 1
            day.wait_total += wait
            day.within += wait <= SL_SECONDS


async def _waiting_kinds(pool: Pool) -> Counter[tuple[str, str, str]]:
    """(skill, kind, state) of the tasks in line and scheduled, counted."""
    ids = cast(list[str], await pool.redis.zrange(pool.keys.due, 0, _SCAN - 1))
    for skill in cast(set[str], await pool.redis.smembers(pool.keys.skills)):
        ids += cast(list[str], await pool.redis.zrange(pool.keys.queue(skill), 0, _SCAN - 1))
    pipe = pool.redis.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(pool.keys.task(task_id), ["skill", "kind", "state"])
    return Counter((str(r[0]), str(r[1]), str(r[2])) for r in await pipe.execute() if r[0])


async def board(pool: Pool, tally: DayTally, now: float, zone: ZoneInfo) -> Board:
    """Every figure of the wallboard at ``now``."""
    rows = await skill_rows(pool, now)
    day = await tally.update(pool, now, zone)
    kinds = await _waiting_kinds(pool)
    agents = await pool.list_agents()
    skills = []
    for row in rows:
        d = day.get(row.skill, SkillDay())
        offered = d.answered + d.abandoned
        count = {(k, s): n for (sk, k, s), n in kinds.items() if sk == row.skill}
        skills.append(SkillFigures(
            row.skill, row.waiting,
            None if row.oldest_wait is None else now - row.oldest_wait,
            d.within / offered if offered else None,
            d.wait_total / d.answered if d.answered else None,
            d.abandoned / offered if offered else None,
            count.get((TaskKind.CALLBACK, TaskState.SCHEDULED), 0),
            count.get((TaskKind.CALLBACK, TaskState.QUEUED), 0),
            sum(n for (k, _), n in count.items() if k == TaskKind.VOICE_REQUEST),
            row.ready, row.on_call))
    states = Counter(a.state.value for a in agents)
    pauses = Counter(a.pause_reason or "paused" for a in agents
                     if a.state is AgentState.PAUSED)
    return Board(now, skills, dict(sorted(states.items())), dict(sorted(pauses.items())))


class BoardCache:
    """One board per change batch (``Hub.version``), shared by every wallboard stream."""

    def __init__(self) -> None:
        self.tally = DayTally()
        self._version = -1
        self._at = 0.0
        self._html = ""
        self._lock = asyncio.Lock()

    async def html(self, request: web.Request) -> str:
        w = of(request)
        async with self._lock:  # the streams woken together wait for one render
            now = w.clock.now()
            if self._version != w.hub.version or now - self._at >= 5.0:
                version = w.hub.version
                figures = await board(w.pool, self.tally, now, _zone(w))
                self._html = render_board(request, figures)
                self._version, self._at = version, now
            return self._html


def _zone(w: Web) -> ZoneInfo:
    return ZoneInfo(w.settings.center.timezone or "UTC")


def render_board(request: web.Request, figures: Board) -> str:
    return aiohttp_jinja2.render_string("_board.html", request, {"b": figures})


BOARD = web.AppKey("acdkit_board", BoardCache)


async def page(request: web.Request) -> web.Response:
    html = await request.app[BOARD].html(request)
    context: dict[str, Any] = {"board": html, "big": request.query.get("big") == "1"}
    return aiohttp_jinja2.render_template("wallboard.html", request, context)


async def updates(request: web.Request) -> web.StreamResponse:
    cache = request.app[BOARD]

    async def render(changed: set[str]) -> str:
        return await cache.html(request)

    return await stream(request, of(request).hub, "board", render, idle=5.0)


def routes() -> list[web.RouteDef]:
    return [web.get("/wallboard", page), web.get("/wallboard/stream", updates)]
