"""Queue KPIs with stated formulas, computed from audit events (docs/kpis.md).

``compute(events, window, settings, ...)`` gives one ``Kpis`` value; a caller that wants
figures for several skills or agents reads the events once with ``kpi_journal.collect`` and
calls ``figures(journal, ...)`` for each. Every figure's formula is in ``FORMULAS``; the
service level names the formula chosen in ``[kpis] sl_formula``. Pure: times come in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from acdkit.core.agents import Agent
from acdkit.core.kpi_formulas import FORMULAS, SL_TEXT, SlFormula
from acdkit.core.kpi_journal import Event, Journal, TaskRecord, collect
from acdkit.core.windows import Window, parse_window

__all__ = ["FORMULAS", "AgentFigures", "CallFigures", "CallbackFigures", "KpiSettings",
           "Kpis", "OutboundFigures", "RequestFigures", "SlFormula", "Window",
           "collect", "compute", "figures", "parse_window", "percentile"]


@dataclass(frozen=True)
class KpiSettings:
    threshold_s: float = 20.0
    short_abandon_s: float = 5.0
    sl_formula: SlFormula = SlFormula.APP_QUEUE


@dataclass(frozen=True)
class CallFigures:
    offered: int = 0
    answered: int = 0
    answered_within: int = 0  # answered with wait <= threshold_s (T)
    abandoned: int = 0
    short_abandoned: int = 0
    overflow_callback: int = 0
    overflow_voice_request: int = 0
    timed_out: int = 0
    service_level: float | None = None
    service_level_formula: str = ""
    threshold_s: float = 20.0
    asa: float | None = None
    asa_p90: float | None = None
    aht: float | None = None
    abandon_rate: float | None = None
    longest_wait: float | None = None
    waits: tuple[float, ...] = ()  # waits of answered calls (for a histogram)


@dataclass(frozen=True)
class CallbackFigures:
    booked: int = 0
    completed: int = 0
    failed: int = 0
    expired: int = 0
    first_attempt_rate: float | None = None
    booking_to_connect_p50: float | None = None
    booking_to_connect_p90: float | None = None


@dataclass(frozen=True)
class RequestFigures:
    recorded: int = 0
    open: int = 0
    delivered: int = 0
    time_to_delivery_p50: float | None = None


@dataclass(frozen=True)
class OutboundFigures:
    dialed: int = 0
    reached: int = 0


@dataclass(frozen=True)
class AgentFigures:
    seconds: Mapping[str, float] = field(default_factory=dict)  # state → seconds
    paused: Mapping[str, float] = field(default_factory=dict)  # pause reason → seconds
    occupancy: float | None = None


@dataclass(frozen=True)
class Kpis:
    window: Window
    skill: str | None
    agent: str | None
    calls: CallFigures
    callbacks: CallbackFigures
    requests: RequestFigures
    outbound: OutboundFigures
    agents: AgentFigures
    formulas: Mapping[str, str]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _ratio(top: int | float, bottom: int | float) -> float | None:
    return top / bottom if bottom > 0 else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _calls(recs: Sequence[TaskRecord], w: Window, s: KpiSettings, agent: str | None,
           oldest: float | None) -> CallFigures:
    mine = (lambda r: r.answered_by == agent) if agent else (lambda r: True)
    waits = [r.wait for r in recs if w.holds(r.answered_at) and mine(r) and r.wait is not None]
    ended = [r for r in recs if w.holds(r.ended_at)]
    gone = [r.end_wait or 0.0 for r in ended if r.end == "abandon"]
    aht = [r.ended_at - r.answered_at + (r.wrap or 0.0) for r in ended if r.end == "complete"
           and mine(r) and r.answered_at is not None and r.ended_at is not None]
    offered = sum(1 for r in recs if w.holds(r.offered_at))
    within = sum(1 for x in waits if x <= s.threshold_s)
    short = sum(1 for x in gone if x < s.short_abandon_s)
    bottom = (len(waits) + len(gone) if s.sl_formula is SlFormula.APP_QUEUE
              else offered - short)
    return CallFigures(
        offered, len(waits), within, len(gone), short,
        sum(1 for r in ended if r.end == "cancel" and "callback" in r.outcome),
        sum(1 for r in ended if r.end == "cancel" and "voice request" in r.outcome),
        sum(1 for r in ended if r.end == "expire"),
        _ratio(within, bottom), f"{s.sl_formula.value}: {SL_TEXT[s.sl_formula]}", s.threshold_s,
        _mean(waits), percentile(waits, 90), _mean(aht), _ratio(len(gone), offered),
        None if oldest is None else max(0.0, w.end - oldest), tuple(sorted(waits)))


def _callbacks(recs: Sequence[TaskRecord], w: Window) -> CallbackFigures:
    done = [r for r in recs if w.holds(r.ended_at) and r.end == "complete"]
    reach = [r.answered_at - r.created for r in recs if w.holds(r.answered_at)
             and r.created is not None and r.answered_at is not None]
    return CallbackFigures(
        sum(1 for r in recs if w.holds(r.offered_at)), len(done),
        sum(1 for r in recs if w.holds(r.ended_at) and r.end == "fail"),
        sum(1 for r in recs if w.holds(r.ended_at) and r.end == "expire"),
        _ratio(sum(1 for r in done if r.attempts <= 1), len(done)),
        percentile(reach, 50), percentile(reach, 90))


def _requests(recs: Sequence[TaskRecord], w: Window, open_now: int | None) -> RequestFigures:
    took = [r.delivered_at - r.created for r in recs if w.holds(r.delivered_at)
            and r.created is not None and r.delivered_at is not None]
    still = sum(1 for r in recs if r.recorded_at is not None and r.delivered_at is None
                and r.end not in ("cancel", "expire", "fail"))
    return RequestFigures(sum(1 for r in recs if w.holds(r.recorded_at)),
                          still if open_now is None else open_now,
                          len(took), percentile(took, 50))


def _outbound(recs: Sequence[TaskRecord], w: Window) -> OutboundFigures:
    return OutboundFigures(sum(1 for r in recs for t in r.dials if w.holds(t)),
                           sum(1 for r in recs if w.holds(r.answered_at)))


def _agents(journal: Journal, skill: str | None, agent: str | None) -> AgentFigures:
    seconds: dict[str, float] = {}
    paused: dict[str, float] = {}
    for clock in journal.agents.values():
        if (agent and clock.id != agent) or (
                skill and skill not in journal.skills_of.get(clock.id, frozenset())):
            continue
        for state, spent in clock.seconds.items():
            seconds[state] = seconds.get(state, 0.0) + spent
        for reason, spent in clock.paused.items():
            paused[reason] = paused.get(reason, 0.0) + spent
    busy = seconds.get("on_call", 0.0) + seconds.get("wrap_up", 0.0)
    staffed = busy + seconds.get("ready", 0.0) + seconds.get("reserved", 0.0)
    return AgentFigures(seconds, paused, _ratio(busy, staffed))


def figures(journal: Journal, settings: KpiSettings, *, skill: str | None = None,
            agent: str | None = None, oldest_waiting: float | None = None,
            open_requests: int | None = None) -> Kpis:
    """The KPIs of ``journal`` for one skill and/or agent (None: the whole center).

    ``oldest_waiting``: enqueue time of the oldest call still queued (from the pool);
    ``open_requests``: voice requests not yet answered (None: counted from the journal).
    """
    def pick(kind: str) -> list[TaskRecord]:
        return [r for r in journal.tasks.values() if r.kind == kind
                and (skill is None or r.skill == skill)
                and (agent is None or agent in r.agents or r.answered_by == agent)]

    w = journal.window
    return Kpis(w, skill, agent, _calls(pick("call"), w, settings, agent, oldest_waiting),
                _callbacks(pick("callback"), w), _requests(pick("voice_request"), w,
                                                           open_requests),
                _outbound(pick("outbound"), w), _agents(journal, skill, agent),
                {**FORMULAS, "service_level": SL_TEXT[settings.sl_formula]})


def compute(events: Iterable[Event], window: Window, settings: KpiSettings, *,
            skill: str | None = None, agent: str | None = None, agents: Sequence[Agent] = (),
            oldest_waiting: float | None = None, open_requests: int | None = None) -> Kpis:
    """``figures(collect(events, window, agents), settings, ...)`` in one call."""
    return figures(collect(events, window, agents), settings, skill=skill, agent=agent,
                   oldest_waiting=oldest_waiting, open_requests=open_requests)
