"""When a caller on hold next needs attention (core/holding.py): the wake is never later
than anything due, never in the past when nothing is, and the moments are those of the
settings."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from acdkit.core import holding
from acdkit.core.holding import Due, Held, HoldTimers
from acdkit.core.overflow import OverflowRule

T0 = 1_700_000_000.0
seconds = st.floats(min_value=0.5, max_value=7_200, allow_nan=False)
offsets = st.floats(min_value=-100, max_value=10_000, allow_nan=False)


@st.composite
def held_callers(draw: st.DrawFn) -> tuple[HoldTimers, Held]:
    t = HoldTimers(announce_every=draw(seconds), max_wait=draw(seconds),
                   first_after=draw(st.floats(min_value=0, max_value=600)),
                   repeat_every=draw(seconds), offers=draw(st.booleans()),
                   retry=draw(st.sampled_from([0.5, 1.0])))
    since = st.none() | offsets.map(lambda s: T0 + s)
    h = Held(T0, last_announce=draw(since), last_offer=draw(since), looked_at=draw(since))
    return t, h


@given(held_callers(), offsets)
def test_nothing_is_due_before_the_wake_and_something_is_at_it(
        caller: tuple[HoldTimers, Held], offset: float) -> None:
    t, h = caller
    wake, now = holding.next_wake(t, h), T0 + offset
    assert bool(holding.due(t, h, now)) == (now >= wake)
    assert holding.due(t, h, wake)


@given(held_callers())
def test_after_a_look_the_wake_is_later_than_the_look(caller: tuple[HoldTimers, Held]) -> None:
    t, h = caller
    if h.looked_at is not None:
        assert holding.next_wake(t, h) > h.looked_at


@given(held_callers(), offsets)
def test_nothing_comes_sooner_than_its_setting(caller: tuple[HoldTimers, Held],
                                               offset: float) -> None:
    t, h = caller
    now = T0 + offset
    d = holding.due(t, h, now)
    if d.announce:
        assert now >= (h.last_announce or h.enqueued_at) + t.announce_every
    if d.offer:
        assert t.offers and now >= h.enqueued_at + t.first_after
        assert h.last_offer is None or now >= h.last_offer + t.repeat_every
    if d.expire:
        assert now >= h.enqueued_at + t.max_wait


def test_a_new_caller_hears_its_position_every_announce_every() -> None:
    t = HoldTimers(announce_every=30, max_wait=3_600, first_after=5, repeat_every=60,
                   offers=False)
    h = Held(T0)
    assert holding.next_wake(t, h) == T0 + 30  # not at once, not each second
    assert holding.due(t, h, T0 + 29.9) == Due()
    assert holding.due(t, h, T0 + 30) == Due(announce=True)
    h = replace(h, last_announce=T0 + 30.2, looked_at=T0 + 30.2)
    assert holding.next_wake(t, h) == T0 + 60.2


def test_the_offer_comes_after_first_after_then_every_repeat_every() -> None:
    t = HoldTimers(announce_every=30, max_wait=3_600, first_after=5, repeat_every=60,
                   offers=True)
    h = Held(T0)
    assert holding.next_wake(t, h) == T0 + 5
    assert holding.due(t, h, T0 + 5) == Due(offer=True)
    made = replace(h, last_offer=T0 + 5, looked_at=T0 + 5)
    assert holding.next_wake(t, made) == T0 + 30  # the announcement comes first
    assert holding.due(t, replace(made, last_announce=T0 + 40), T0 + 65) == Due(offer=True)


def test_an_offer_no_rule_makes_yet_is_looked_at_again_each_retry() -> None:
    t = HoldTimers(announce_every=30, max_wait=3_600, first_after=5, repeat_every=60,
                   offers=True)
    h = Held(T0, looked_at=T0 + 5)  # looked at 5 s in: no rule said "offer"
    assert holding.next_wake(t, h) == T0 + 6
    assert holding.due(t, h, T0 + 6) == Due(offer=True)


def test_the_longest_wait_ends_on_time_and_is_looked_at_again_while_it_lasts() -> None:
    t = HoldTimers(announce_every=3_600, max_wait=300, first_after=5, repeat_every=60,
                   offers=False)
    h = Held(T0)
    assert holding.next_wake(t, h) == T0 + 300
    assert holding.due(t, h, T0 + 300) == Due(expire=True)
    taken = replace(h, looked_at=T0 + 300)  # the task was taken: still in line later?
    assert holding.next_wake(t, taken) == T0 + 301


def test_a_caller_adopted_after_a_long_wait_hears_its_position_at_once() -> None:
    t = HoldTimers(announce_every=30, max_wait=3_600, first_after=5, repeat_every=60,
                   offers=False)
    assert holding.due(t, Held(T0 - 100), T0) == Due(announce=True)


def test_no_offer_is_due_when_no_rule_can_make_one() -> None:
    never = OverflowRule(wait_over=None, position_over=None, when_no_agents=False,
                         when_out_of_hours=False)
    assert not holding.can_offer(never)
    for rule in (replace(never, wait_over=60.0), replace(never, position_over=5),
                 replace(never, when_no_agents=True), replace(never, when_out_of_hours=True)):
        assert holding.can_offer(rule)
    t = holding.timers(30, 3_600, never)
    assert not holding.due(t, Held(T0), T0 + 29).offer and t.retry == 1.0
    assert holding.timers(0.5, 3_600, never).retry == 0.5
