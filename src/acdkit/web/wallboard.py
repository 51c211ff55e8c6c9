"""The wallboard (``/wallboard``, ``?big=1`` for a wall TV): per skill what waits and how the
day goes, and the agents by state with their pause reasons; live over SSE.

The day's figures are ``acdkit stats``'s (core/kpis.py, the formulas of docs/kpis.md and the
``[kpis]`` settings): the day's KPI events are read once and then a little more at each
render; each render runs the journal over them. A render costs more as the day fills (about
0.5 s at 100,000 events), so a change is shown within ``MIN_RENDER`` seconds, or five times
the last render's cost when that is longer: at most a fifth of the time goes to renders
however busy the center is.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from acdkit.core.agents import AgentState
from acdkit.core.kpi_journal import collect
from acdkit.core.kpis import KpiSettings
from acdkit.core.tasks import TaskKind, TaskState
from acdkit.core.windows import Window, parse_window
from acdkit.stats import skill_rows
from acdkit.store.kpis import kpi_settings, kpis_of, read_events, read_live
from acdkit.store.pool import Pool
from acdkit.web.context import Web, of
from acdkit.web.events import stream

MIN_RENDER = 1.0  # seconds between two renders of a changing board
IDLE_RENDER = 5.0  # seconds between two renders of a quiet board (waits tick)


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
    formula: str


@dataclass
class DayEvents:
    """Today's KPI events (and ``lookback`` seconds before midnight, for the earlier steps
    of the tasks the day sees), read from the KPI stream a little more at each call."""

    lookback: float
    day: float = -1.0  # the window's start: midnight in the center's zone
    last_id: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    async def update(self, pool: Pool, window: Window) -> list[dict[str, Any]]:
        if window.start != self.day:  # the first call, or a new day
            self.day, self.events, self.last_id = window.start, [], ""
        more, self.last_id = await read_events(pool, window.start - self.lookback, None,
                                               after=self.last_id)
        self.events += more
        return self.events


def formula_text(settings: KpiSettings, formulas: dict[str, str]) -> str:
    return (f"service level = {formulas['service_level']}, T = {settings.threshold_s:g} s; "
            f"ASA = {formulas.get('asa', 'mean wait until answered')}")


async def board(pool: Pool, day: DayEvents, now: float, timezone: str,
                settings: KpiSettings) -> Board:
    """Every figure of the wallboard at ``now``."""
    window = parse_window("today", now, timezone)
    events = await day.update(pool, window)
    live = await read_live(pool)
    journal = collect(events, window, live.agents)
    rows = await skill_rows(pool, now)
    kinds = await pool.waiting_by_kind()
    skills = []
    formulas: dict[str, str] = {}
    for row in rows:
        k = kpis_of(journal, live, settings, skill=row.skill)
        formulas = dict(k.formulas)
        count = {(kd, st): n for (sk, kd, st), n in kinds.items() if sk == row.skill}
        skills.append(SkillFigures(
            row.skill, row.waiting,
            None if row.oldest_wait is None else now - row.oldest_wait,
            k.calls.service_level, k.calls.asa, k.calls.abandon_rate,
            count.get((TaskKind.CALLBACK, TaskState.SCHEDULED), 0),
            count.get((TaskKind.CALLBACK, TaskState.QUEUED), 0),
            sum(n for (kd, _), n in count.items() if kd == TaskKind.VOICE_REQUEST),
            row.ready, row.on_call))
    if not formulas:
        formulas = dict(kpis_of(journal, live, settings).formulas)
    states = Counter(a.state.value for a in live.agents)
    pauses = Counter(a.pause_reason or "paused" for a in live.agents
                     if a.state is AgentState.PAUSED)
    return Board(now, skills, dict(sorted(states.items())), dict(sorted(pauses.items())),
                 formula_text(settings, formulas))


class BoardCache:
    """One board per change batch (``Hub.version``), shared by every wallboard stream."""

    def __init__(self) -> None:
        self.day: DayEvents | None = None
        self._version = -1
        self._at = 0.0
        self._cost = 0.0  # seconds the last render took
        self._html = ""
        self._lock = asyncio.Lock()

    async def html(self, request: web.Request) -> str:
        w = of(request)
        async with self._lock:  # the streams woken together wait for one render
            changed = self._version != w.hub.version
            gap = max(MIN_RENDER, 5 * self._cost)  # a fifth of the time at most
            if changed and (wait := self._at + gap - w.clock.now()) > 0:
                await asyncio.sleep(wait)  # the streams woken meanwhile share this render
            now = w.clock.now()
            if changed or now - self._at >= max(IDLE_RENDER, gap):
                version, started = w.hub.version, time.perf_counter()
                self.day = self.day or DayEvents(w.settings.kpis.lookback_s)
                figures = await board(w.pool, self.day, now, _timezone(w),
                                      kpi_settings(w.settings.kpis))
                self._html = render_board(request, figures)
                self._version, self._at = version, now
                self._cost = time.perf_counter() - started
            return self._html


def _timezone(w: Web) -> str:
    return w.settings.center.timezone or "UTC"


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
