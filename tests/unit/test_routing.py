"""Priority and eligibility (core/routing.py)."""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acdkit.core.agents import Agent, AgentState
from acdkit.core.routing import (
    PriorityRules,
    best_task,
    effective_priority,
    eligible,
    points,
    pool_score,
)
from acdkit.core.tasks import Task, TaskKind, TaskState

T0 = 1_800_000_000.0


def task(id: str = "t", kind: TaskKind = TaskKind.CALL, at: float = T0, **kw: object) -> Task:
    base = Task(id=id, kind=kind, skill="sales", created_at=at, enqueued_at=at)
    return replace(base, **kw)  # type: ignore[arg-type]


def agent(id: str = "a1", level: int = 5, **kw: object) -> Agent:
    base = Agent(id=id, state=AgentState.READY, skills=MappingProxyType({"sales": level}))
    return replace(base, **kw)  # type: ignore[arg-type]


# Rates whose seconds-per-point are whole numbers, so pool scores are exact.
rates = st.sampled_from([0.5, 1.0, 2.0, 3.0, 4.0, 6.0])
int_tasks = st.builds(
    lambda kind, age, prio, n: task(f"t{n}", kind, T0 + age, priority=prio),
    st.sampled_from(list(TaskKind)), st.integers(-500_000, 500_000), st.integers(-100, 100),
    st.integers(0, 10**6),
)
nows = st.integers(-1_000_000, 1_000_000).map(lambda d: T0 + d)


def sign(x: float, tol: float = 1e-6) -> int:
    return 0 if abs(x) <= tol else (1 if x > 0 else -1)


@given(int_tasks, int_tasks, rates, nows)
def test_pool_order_equals_effective_priority_order_at_any_now(
    a: Task, b: Task, rate: float, now: float
) -> None:
    rules = PriorityRules(aging_per_minute=rate)
    by_score = sign(pool_score(b, rules) - pool_score(a, rules))  # +1: a is served first
    by_priority = sign(effective_priority(a, rules, now) - effective_priority(b, rules, now))
    assert by_score == by_priority


@given(int_tasks, rates, nows)
def test_effective_priority_is_now_minus_score_in_points(a: Task, rate: float, now: float) -> None:
    rules = PriorityRules(aging_per_minute=rate)
    expected = (now - pool_score(a, rules)) / rules.seconds_per_point
    assert math.isclose(effective_priority(a, rules, now), expected, abs_tol=1e-6)


@given(int_tasks, int_tasks, st.floats(0, 3), st.floats(0, 50), st.floats(1, 5), rates, nows,
       st.booleans())
def test_order_holds_with_weighted_inputs(
    a: Task, b: Task, rating_w: float, vip_w: float, stars: float, rate: float, now: float,
    vip: bool,
) -> None:
    rules = PriorityRules(aging_per_minute=rate, rating_weight=rating_w, vip_weight=vip_w)
    flags = MappingProxyType({"vip": "yes" if vip else ""})
    a = replace(a, customer_rating=stars, attributes=flags)
    gap = pool_score(b, rules) - pool_score(a, rules)
    lead = effective_priority(a, rules, now) - effective_priority(b, rules, now)
    assert math.isclose(gap, lead * rules.seconds_per_point, abs_tol=1e-3)


@given(int_tasks, int_tasks, st.sampled_from([0.0, -1.0]), nows)
def test_without_aging_points_decide_and_enqueue_time_breaks_ties(
    a: Task, b: Task, rate: float, now: float
) -> None:
    rules = PriorityRules(aging_per_minute=rate)
    pa, pb = points(a, rules), points(b, rules)
    assert effective_priority(a, rules, now) == pa  # a negative rate does not age either
    a_first = pool_score(a, rules) < pool_score(b, rules)
    if pa != pb:
        assert a_first == (pa > pb)
    elif a.enqueued_at != b.enqueued_at:
        assert a_first == (a.enqueued_at < b.enqueued_at)


@given(st.integers(1, 7_200), st.integers(1, 7_200), st.integers(-20, 20), rates)
def test_an_instant_callback_keeps_its_place_ahead_of_newer_calls(
    waited: int, newer_by: int, prio: int, rate: float
) -> None:
    """The caller waited ``waited`` s, took a callback (same enqueue time); a call that came
    in ``newer_by`` s later with equal points is served after it."""
    rules = PriorityRules(aging_per_minute=rate)
    callback = task("cb", TaskKind.CALLBACK, T0, priority=prio)
    call = task("call", TaskKind.CALL, T0 + newer_by, priority=prio)
    assert points(callback, rules) == points(call, rules)
    now = T0 + waited + newer_by
    scored = [(pool_score(t, rules), t) for t in (call, callback)]
    assert best_task(agent(), scored, now) is callback
    assert effective_priority(callback, rules, now) > effective_priority(call, rules, now)


@given(st.floats(-3_600, 3_600), st.one_of(st.none(), st.floats(-3_600, 3_600)))
def test_a_preferred_agent_has_the_task_alone_until_preferred_until(
    offset: float, until: float | None
) -> None:
    now = T0 + offset
    t = task(preferred_agent="chosen", preferred_until=None if until is None else T0 + until)
    assert eligible(agent("chosen"), t, now)
    others_may = until is not None and now >= T0 + until
    assert eligible(agent("other"), t, now) == others_may


def test_the_preferred_agent_still_needs_the_skill() -> None:
    t = task(preferred_agent="chosen", min_level=3)
    assert not eligible(agent("chosen", level=2), t, T0)


@pytest.mark.parametrize("state", [s for s in AgentState if s is not AgentState.READY])
def test_only_a_ready_agent_is_eligible(state: AgentState) -> None:
    assert not eligible(agent(state=state), task(), T0)


@pytest.mark.parametrize("state", [s for s in TaskState if s is not TaskState.QUEUED])
def test_only_a_queued_task_is_offered(state: TaskState) -> None:
    assert not eligible(agent(), task(state=state), T0)


@given(st.integers(0, 9), st.integers(1, 9))
def test_skill_level(level: int, min_level: int) -> None:
    assert eligible(agent(level=level), task(min_level=min_level), T0) == (level >= min_level)


def test_missing_skill_and_required_attributes() -> None:
    assert not eligible(replace(agent(), skills=MappingProxyType({"support": 9})), task(), T0)
    needs = task(required=MappingProxyType({"lang": "de"}))
    assert not eligible(agent(), needs, T0)
    assert not eligible(agent(attributes=MappingProxyType({"lang": "fr"})), needs, T0)
    assert eligible(agent(attributes=MappingProxyType({"lang": "de", "x": "y"})), needs, T0)


def test_best_task_takes_the_lowest_eligible_score() -> None:
    hi, lo, barred = task("hi"), task("lo"), task("barred", min_level=9)
    cands = [(5.0, hi), (1.0, lo), (0.0, barred)]
    assert best_task(agent(level=5), cands, T0) is lo
    assert best_task(agent(level=5), [(0.0, barred)], T0) is None
    assert best_task(agent(), [], T0) is None


@given(st.lists(int_tasks, min_size=1, max_size=12), rates, nows)
def test_best_task_is_the_highest_effective_priority(
    pool: list[Task], rate: float, now: float
) -> None:
    rules = PriorityRules(aging_per_minute=rate)
    chosen = best_task(agent(), [(pool_score(t, rules), t) for t in pool], now)
    assert chosen is not None
    top = max(effective_priority(t, rules, now) for t in pool)
    assert math.isclose(effective_priority(chosen, rules, now), top, abs_tol=1e-6)


def test_points_from_inputs_and_hook() -> None:
    rules = PriorityRules(rating_weight=2.0, preferred_agent_weight=7.0, vip_weight=10.0)
    t = task(priority=3, customer_rating=5.0, preferred_agent="x",
             attributes=MappingProxyType({"vip": "Yes"}))
    assert points(t, rules) == 50 + 3 + 2.0 * 2 + 7 + 10
    hooked = PriorityRules(hook=lambda _t, p: p * 2)
    assert points(task(), hooked) == 100
    assert points(task(kind=TaskKind.OUTBOUND), PriorityRules()) == 0
