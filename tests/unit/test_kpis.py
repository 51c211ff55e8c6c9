"""KPI formulas against a fixture of audit events whose figures are worked out by hand.

Window [1000, 2000), T = 20 s, short abandons < 5 s. The hand calculation is in each test.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from acdkit.core.agents import Agent, AgentState
from acdkit.core.errors import InvalidInput
from acdkit.core.kpis import (
    KpiSettings,
    SlFormula,
    Window,
    collect,
    compute,
    figures,
    parse_window,
    percentile,
)


def E(ts: float, event: str, kind: str, entity: str,
      fields: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"ts": ts, "event": event, "kind": kind, "entity": entity, **(fields or {})}


def task(ts: float, event: str, tid: str, tkind: str = "call", skill: str = "sales",
         **extra: str) -> dict[str, Any]:
    return E(ts, event, "task", tid, {"tkind": tkind, "skill": skill, **extra})


def call(tid: str, enq: float, *steps: tuple[float, str, dict[str, str]],
         skill: str = "sales") -> list[dict[str, Any]]:
    out = [task(enq, "add", tid, skill=skill, to="queued", enq=str(enq), created=str(enq))]
    return out + [task(ts, ev, tid, skill=skill, enq=str(enq), **f) for ts, ev, f in steps]


def agent(ts: float, event: str, aid: str, frm: str, to: str, **extra: str) -> dict[str, Any]:
    return E(ts, event, "agent", aid, {"from": frm, "to": to, **extra})


A1, A2 = {"agent": "a1"}, {"agent": "a2"}
EVENTS: list[dict[str, Any]] = [
    # c6 is cut in two by the window: queued 950, answered 970 (wait 20), completed 1020.
    *call("c6", 950, (960, "reserve", A2), (970, "connect", A2)),
    agent(900, "login", "a1", "logged_out", "ready", since="0"),
    *call("c1", 1000, (1005, "reserve", A1), (1010, "connect", A1)),
    agent(1005, "reserve", "a1", "ready", "reserved", task="c1", since="900"),
    agent(1010, "answer", "a1", "reserved", "on_call", task="c1", since="1005"),
    *call("c2", 1010, (1030, "abandon", {"from": "queued"})),  # exactly at T: not short
    task(1020, "complete", "c6", enq="950", outcome="customer hung up", **A2),
    agent(1020, "end", "a2", "on_call", "wrap_up", task="c6", since="970"),
    *call("c3", 1020, (1023, "abandon", {})),  # 3 s: a short abandon
    agent(1030, "wrapped", "a2", "wrap_up", "ready", since="1020"),
    *call("c4", 1030, (1040, "reserve", A2), (1055, "release", {"from": "reserved", **A2}),
          (1080, "reserve", A1), (1085, "connect", A1), (1145, "complete", A1)),
    task(1070, "complete", "c1", enq="1000", **A1),
    agent(1070, "end", "a1", "on_call", "wrap_up", task="c1", since="1010"),
    agent(1075, "wrapped", "a1", "wrap_up", "ready", since="1070"),
    *call("c5", 1100, (1115, "connect", A2), (1135, "complete", A2)),
    *call("c8", 1200, (1260, "cancel", {"outcome": "caller chose callback cb9"})),
    agent(1200, "pause", "a1", "ready", "paused", reason="lunch", since="1075"),
    *call("c9", 1300, (1302, "abandon", {}), skill="support"),
    *call("c10", 1400, (1500, "expire", {"outcome": "max_wait"})),
    agent(1500, "resume", "a1", "paused", "ready", paused_for="lunch", since="1200"),
    agent(1800, "logout", "a2", "ready", "logged_out", since="1030"),
    *call("c7", 1900, (1990, "connect", A2), (2010, "complete", A2)),  # ends after the window
    # callbacks: cb9 answered on its third attempt, cb10 on its first
    task(1260, "add", "cb9", "callback", to="queued", enq="1200", created="1260"),
    task(1300, "reserve", "cb9", "callback", **A1),
    task(1320, "reschedule", "cb9", "callback", attempts="1", **{"from": "reserved"}),
    task(1400, "due", "cb9", "callback", attempts="1"),
    task(1410, "reserve", "cb9", "callback", **A1),
    task(1430, "reschedule", "cb9", "callback", attempts="2", **{"from": "reserved"}),
    task(1500, "due", "cb9", "callback", attempts="2"),
    task(1510, "reserve", "cb9", "callback", **A1),
    task(1520, "connect", "cb9", "callback", attempts="2", **A1),
    task(1580, "complete", "cb9", "callback", attempts="3", **A1),
    task(1600, "add", "cb10", "callback", to="queued", created="1600"),
    task(1620, "connect", "cb10", "callback", **A2),
    task(1650, "complete", "cb10", "callback", attempts="1", **A2),
    task(1000, "add", "cb11", "callback", to="queued", created="1000"),
    task(1700, "fail", "cb11", "callback", attempts="3", **{"from": "reserved"}),
    task(900, "add", "cb12", "callback", to="scheduled", created="900"),
    task(1800, "expire", "cb12", "callback", **{"from": "scheduled"}),
    # voice requests: vr1 delivered 300 s after recording, vr2 still open
    task(1100, "add", "vr1", "voice_request", to="queued"),
    E(1100, "request_recorded", "task", "vr1", {}),
    E(1400, "request_delivered", "task", "vr1", {"created": "1100"}),
    E(1500, "request_recorded", "task", "vr2", {}),
    # outbound: o1 reached on its second dial, o2 failed on its first
    task(1000, "add", "o1", "outbound", to="queued"),
    task(1100, "reschedule", "o1", "outbound", **{"from": "reserved"}),
    task(1300, "connect", "o1", "outbound", **A1),
    task(1350, "complete", "o1", "outbound", **A1),
    task(1400, "fail", "o2", "outbound", **{"from": "reserved"}),
]
AGENTS = [
    Agent("a1", skills={"sales": 1}, state=AgentState.READY, state_since=1500),
    Agent("a2", skills={"sales": 1}, state=AgentState.LOGGED_OUT, state_since=1800),
    Agent("a3", skills={"support": 1}, state=AgentState.PAUSED, state_since=500,
          pause_reason="training"),  # no event: paused the whole window
]
WINDOW = Window(1000.0, 2000.0)
SETTINGS = KpiSettings(threshold_s=20, short_abandon_s=5)
EVENTS.sort(key=lambda e: e["ts"])


def sales(formula: SlFormula = SlFormula.APP_QUEUE, **kw: object):  # type: ignore[no-untyped-def]
    return compute(EVENTS, WINDOW, KpiSettings(20, 5, formula), skill="sales", agents=AGENTS,
                   **kw)  # type: ignore[arg-type]


def test_call_counts() -> None:
    # offered in [1000, 2000): c1 c2 c3 c4 c5 c7 c8 c10 (c6 came at 950, c9 is support)
    calls = sales().calls
    assert (calls.offered, calls.answered, calls.abandoned, calls.short_abandoned) == (8, 4, 2, 1)
    assert (calls.overflow_callback, calls.timed_out, calls.answered_within) == (1, 1, 2)


def test_service_level_both_formulas() -> None:
    # answered c1 10 s, c4 55 s, c5 15 s, c7 90 s: within 20 s = c1, c5
    # app_queue: 2 / (4 answered + 2 abandoned); c2 abandoned at exactly 20 s counts
    assert sales().calls.service_level == pytest.approx(2 / 6)
    assert sales().calls.service_level_formula.startswith("app_queue: ")
    # offered_minus_short: 2 / (8 offered - 1 short (c3, 3 s))
    hosted = sales(SlFormula.OFFERED_MINUS_SHORT).calls
    assert hosted.service_level == pytest.approx(2 / 7)
    assert hosted.service_level_formula.startswith("offered_minus_short: ")


def test_asa_aht_abandon_rate_longest_wait() -> None:
    calls = sales(oldest_waiting=1950.0).calls
    assert calls.asa == pytest.approx((10 + 55 + 15 + 90) / 4)
    assert calls.asa_p90 == 90  # nearest rank: ceil(0.9 * 4) = 4th of [10, 15, 55, 90]
    # completed in the window: c1 60 talk + 5 wrap, c4 60 + 0 (no wrap-up seen), c5 20,
    # c6 (answered before the window) 50 talk + 10 wrap; c7 completes after the window
    assert calls.aht == pytest.approx((65 + 60 + 20 + 60) / 4)
    assert calls.abandon_rate == pytest.approx(2 / 8)
    assert calls.longest_wait == 50  # window end 2000 - 1950
    assert calls.waits == (10, 15, 55, 90)


def test_window_cuts_a_call_in_two() -> None:
    # c6: offered and answered before the window, completed inside it: not offered, not
    # answered here, but its handling time counts; a2's on-call time counts only from 1000.
    before = compute(EVENTS, Window(900.0, 1000.0), SETTINGS, skill="sales")
    assert (before.calls.offered, before.calls.answered, before.calls.aht) == (1, 1, None)
    assert before.calls.asa == 20
    a2 = sales(agent="a2")
    assert a2.agents.seconds["on_call"] == 20 and a2.agents.seconds["wrap_up"] == 10


def test_whole_center_adds_other_skills() -> None:
    calls = compute(EVENTS, WINDOW, SETTINGS, agents=AGENTS).calls
    assert (calls.offered, calls.abandoned, calls.short_abandoned) == (9, 3, 2)


def test_callbacks() -> None:
    cb = sales().callbacks
    # booked in the window cb9 cb10 cb11 (cb12 was booked at 900); cb9 took three attempts
    assert (cb.booked, cb.completed, cb.failed, cb.expired) == (3, 2, 1, 1)
    assert cb.first_attempt_rate == 0.5
    # booking → connection: cb9 1520 - 1260 = 260, cb10 20
    assert (cb.booking_to_connect_p50, cb.booking_to_connect_p90) == (20, 260)


def test_voice_requests_and_outbound() -> None:
    kpis = compute(EVENTS, WINDOW, SETTINGS)
    assert kpis.requests.recorded == 2 and kpis.requests.delivered == 1
    assert kpis.requests.open == 1 and kpis.requests.time_to_delivery_p50 == 300
    assert compute(EVENTS, WINDOW, SETTINGS, open_requests=7).requests.open == 7
    assert (kpis.outbound.dialed, kpis.outbound.reached) == (3, 1)


def test_agent_time_and_occupancy() -> None:
    everyone = compute(EVENTS, WINDOW, SETTINGS, agents=AGENTS).agents
    # a1: ready 5 + 125 + 500, reserved 5, on call 60, wrap-up 5, paused (lunch) 300
    # a2: on call 20, wrap-up 10, ready 770, then logged out; a3: paused (training) 1000
    assert everyone.seconds == {"ready": 1400, "reserved": 5, "on_call": 80, "wrap_up": 15,
                                "paused": 1300}
    assert everyone.paused == {"lunch": 300, "training": 1000}
    assert everyone.occupancy == pytest.approx(95 / 1500)
    a1 = sales(agent="a1").agents
    assert a1.paused == {"lunch": 300} and a1.occupancy == pytest.approx(65 / 700)
    assert sales().agents.paused == {"lunch": 300}  # a3 has no sales skill


def test_agent_scope_on_calls() -> None:
    calls = sales(agent="a1").calls
    assert (calls.offered, calls.answered, calls.answered_within) == (2, 2, 1)  # c1, c4


def test_figures_reuse_one_journal() -> None:
    journal = collect(EVENTS, WINDOW, AGENTS)
    assert figures(journal, SETTINGS, skill="support").calls.short_abandoned == 1
    assert figures(journal, SETTINGS, skill="sales").calls.offered == 8
    assert "service_level" in figures(journal, SETTINGS).formulas


def test_empty_window_gives_none_not_zero() -> None:
    kpis = compute([], WINDOW, SETTINGS)
    assert kpis.calls.service_level is None and kpis.calls.asa is None
    assert kpis.agents.occupancy is None


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 50) == 1.0


def test_windows() -> None:
    now = datetime(2026, 12, 4, 10, 30, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    today = parse_window("today", now, "Europe/Paris")
    assert today.start == datetime(2026, 12, 4, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert today.end == now
    assert parse_window("15m", now, "UTC").start == now - 900
    assert parse_window("60m", now, "UTC").start == now - 3600
    assert parse_window("2026-12-04T10:00", now, "Europe/Paris").start == now - 1800
    for bad in ("yesterday", "0m", "2027-01-01T00:00", "-5m"):
        with pytest.raises(InvalidInput):
            parse_window(bad, now, "UTC")
    with pytest.raises(InvalidInput):
        parse_window("today", now, "Mars/Olympus")
