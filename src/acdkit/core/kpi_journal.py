"""One pass over audit events: what happened to each task and how long each agent spent in
each state, inside a time window. ``core/kpis.py`` turns the journal into figures.

Window rules (docs/kpis.md): a window is ``[start, end)`` in epoch seconds. Each milestone
of a task (offered, answered, abandoned, completed...) counts in the window that holds the
event; events before ``start`` are read only to know a task's earlier milestones (a call
answered before the window and completed inside it has its talk time). Agent state time is
the one figure cut at the window's edges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from acdkit.core.agents import Agent, AgentState
from acdkit.core.windows import Window

# An audit entry as the store reads it from the KPI stream (store/kpis.py): ``ts`` (epoch
# seconds, a float), ``event``, ``kind`` (task or agent), ``entity``, and the event's own
# fields as strings. A plain mapping: 100,000 of them are read per busy day.
Event = Mapping[str, Any]


ENDS = frozenset({"complete", "abandon", "cancel", "expire", "fail"})
HELD = frozenset({"reserved", "active"})


@dataclass(slots=True)
class TaskRecord:
    """What the journal saw of one task (built by ``collect``; read-only afterwards)."""

    id: str
    kind: str = ""
    skill: str = ""
    enq: float | None = None  # its place in line (enqueued_at)
    created: float | None = None  # booking time for a callback
    offered_at: float | None = None
    answered_at: float | None = None
    answered_by: str = ""
    wait: float | None = None  # answered_at - enq
    ended_at: float | None = None
    end: str = ""  # complete | abandon | cancel | expire | fail
    outcome: str = ""
    end_wait: float | None = None  # ended_at - enq
    attempts: int = 0
    agents: set[str] = field(default_factory=set)  # every agent that held it
    dials: list[float] = field(default_factory=list)  # customer attempts (outcome times)
    wrap: float | None = None  # the wrap-up that followed it
    recorded_at: float | None = None  # voice request
    delivered_at: float | None = None


@dataclass(slots=True)
class AgentClock:
    """Seconds per state of one agent inside the window (paused split by reason)."""

    id: str
    state: str = ""
    since: float = 0.0
    reason: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    paused: dict[str, float] = field(default_factory=dict)
    wrap_task: str = ""


@dataclass(frozen=True)
class Journal:
    window: Window
    tasks: Mapping[str, TaskRecord]
    agents: Mapping[str, AgentClock]
    skills_of: Mapping[str, frozenset[str]]  # agent → skills (from the agents given)


def _num(fields: Mapping[str, str], name: str) -> float | None:
    raw = fields.get(name)
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _on_task(tasks: dict[str, TaskRecord], e: Event) -> None:
    f = e
    rec = tasks.get(e["entity"])
    if rec is None:
        rec = tasks[e["entity"]] = TaskRecord(e["entity"])
    rec.kind = f.get("tkind") or rec.kind
    rec.skill = f.get("skill") or rec.skill
    rec.enq = _num(f, "enq") or rec.enq
    rec.created = _num(f, "created") or rec.created
    name, held = e["event"], f.get("from", "") in HELD
    if name == "add":
        rec.offered_at = e["ts"]
    elif name == "reserve":
        rec.agents.add(f.get("agent", ""))
    elif name == "connect":
        rec.answered_at, rec.answered_by = e["ts"], f.get("agent", "")
        rec.wait = None if rec.enq is None else e["ts"] - rec.enq
        rec.dials.append(e["ts"])
    elif name in ENDS:
        rec.ended_at, rec.end, rec.outcome = e["ts"], name, f.get("outcome", "")
        rec.end_wait = None if rec.enq is None else e["ts"] - rec.enq
        rec.attempts = int(_num(f, "attempts") or 0)
        if held and name != "complete":
            rec.dials.append(e["ts"])
    elif name == "reschedule" and held:
        rec.dials.append(e["ts"])
    elif name.startswith("request_"):
        _on_request(rec, e)


def _on_request(rec: TaskRecord, e: Event) -> None:
    rec.kind = rec.kind or "voice_request"
    if e["event"] == "request_recorded":
        rec.recorded_at = e["ts"]
        rec.created = rec.created or e["ts"]
    elif e["event"] == "request_delivered":
        rec.delivered_at = e["ts"]


def _spend(clock: AgentClock, until: float, window: Window) -> None:
    lo, hi = max(clock.since, window.start), min(until, window.end)
    if not clock.state or clock.state == AgentState.LOGGED_OUT or hi <= lo:
        return
    clock.seconds[clock.state] = clock.seconds.get(clock.state, 0.0) + hi - lo
    if clock.state == AgentState.PAUSED:
        reason = clock.reason or "unknown"
        clock.paused[reason] = clock.paused.get(reason, 0.0) + hi - lo


def _leave_wrap(clock: AgentClock, tasks: dict[str, TaskRecord], until: float,
                window: Window) -> None:
    rec = tasks.get(clock.wrap_task)
    if rec is not None and rec.wrap is None:
        rec.wrap = max(0.0, min(until, window.end) - clock.since)
    clock.wrap_task = ""


def _on_agent(agents: dict[str, AgentClock], tasks: dict[str, TaskRecord], e: Event,
              window: Window) -> None:
    f = e
    to = f.get("to")
    if not to:
        return
    clock = agents.get(e["entity"])
    if clock is None:
        since = _num(f, "since")
        clock = agents[e["entity"]] = AgentClock(e["entity"], f.get("from", ""),
                                              window.start if since is None else since,
                                              f.get("paused_for", ""))
    _spend(clock, e["ts"], window)
    if clock.state == AgentState.WRAP_UP and clock.wrap_task:
        _leave_wrap(clock, tasks, e["ts"], window)
    clock.state, clock.since = to, e["ts"]
    clock.reason = (f.get("reason") or "paused") if to == AgentState.PAUSED else ""
    if to == AgentState.WRAP_UP:
        clock.wrap_task = f.get("task", "")


def collect(events: Iterable[Event], window: Window, agents: Sequence[Agent] = ()) -> Journal:
    """Read ``events`` (oldest first; later than ``window.end`` are ignored) into a journal.

    ``agents`` (their current state) fill in the agents that had no event: their state since
    ``state_since`` counts. Each agent's last state lasts until the window's end.
    """
    tasks: dict[str, TaskRecord] = {}
    clocks: dict[str, AgentClock] = {}
    for e in events:
        if e["ts"] >= window.end:
            continue
        if e["kind"] == "task":
            _on_task(tasks, e)
        elif e["kind"] == "agent":
            _on_agent(clocks, tasks, e, window)
    for agent in agents:
        if agent.id not in clocks:
            clocks[agent.id] = AgentClock(agent.id, agent.state, agent.state_since,
                                          agent.pause_reason)
    for clock in clocks.values():
        _spend(clock, window.end, window)
        if clock.state == AgentState.WRAP_UP and clock.wrap_task:
            _leave_wrap(clock, tasks, window.end, window)
    return Journal(window, tasks, clocks,
                   {a.id: frozenset(a.skills) for a in agents})
