"""The callback lifecycle after each attempt (core/callbacks.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acdkit.core.callbacks import (
    Decision,
    DialOutcome,
    Next,
    RetryPolicy,
    after_attempt,
    apply,
    check_expired,
    is_reference,
    reference,
)
from acdkit.core.errors import ConfigError
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState, transition

T0 = 1_800_000_000.0
POLICY = RetryPolicy(max_attempts=3, intervals=(300.0, 900.0), expire_after=86_400.0)
NOT_REACHED = [DialOutcome.NO_ANSWER, DialOutcome.BUSY, DialOutcome.FAILED]


def reserved(attempts: int = 0, enqueued_at: float = T0 - 120) -> Task:
    queued = Task(id="cb1", kind=TaskKind.CALLBACK, skill="sales", created_at=T0,
                  enqueued_at=enqueued_at, number="+12025550123", attempts=attempts)
    return transition(queued, TaskEvent.RESERVE, T0, agent_id="a1")


def test_answered_completes() -> None:
    decision = after_attempt(reserved(), DialOutcome.ANSWERED, T0 + 10, POLICY)
    assert (decision.next, decision.event, decision.attempts) == (
        Next.COMPLETED, TaskEvent.COMPLETE, 1)
    done = apply(reserved(), decision, T0 + 10)
    assert (done.state, done.attempts, done.outcome) == (TaskState.COMPLETED, 1, "answered")


@pytest.mark.parametrize("outcome", NOT_REACHED)
def test_retries_follow_the_intervals_then_fail(outcome: DialOutcome) -> None:
    task, now, dues = reserved(), T0, []
    while True:
        decision = after_attempt(task, outcome, now, POLICY)
        task = apply(task, decision, now)
        if decision.next is not Next.RETRY:
            break
        dues.append(task.due_at - now)  # type: ignore[operator]
        assert (task.state, task.agent_id) == (TaskState.SCHEDULED, None)
        now = task.due_at  # type: ignore[assignment]
        task = transition(transition(task, TaskEvent.DUE, now), TaskEvent.RESERVE, now,
                          agent_id="a2")
    assert dues == [300.0, 900.0]
    assert (decision.next, task.state, task.attempts) == (Next.FAILED, TaskState.FAILED, 3)
    assert outcome.value in task.outcome and not decision.follow_up


def test_the_last_interval_repeats() -> None:
    policy = RetryPolicy(max_attempts=6, intervals=(60.0, 120.0), expire_after=None)
    dues = [after_attempt(reserved(attempts=n), DialOutcome.BUSY, T0, policy).due_at
            for n in range(5)]
    assert dues == [T0 + 60, T0 + 120, T0 + 120, T0 + 120, T0 + 120]


def test_follow_up_flag_when_configured() -> None:
    policy = replace(POLICY, follow_up=True)
    failed = after_attempt(reserved(attempts=2), DialOutcome.NO_ANSWER, T0, policy)
    assert (failed.next, failed.follow_up) == (Next.FAILED, True)
    late = after_attempt(reserved(), DialOutcome.BUSY, T0 + 86_400, policy)
    assert (late.next, late.follow_up) == (Next.EXPIRED, True)
    assert not after_attempt(reserved(), DialOutcome.BUSY, T0, policy).follow_up


@given(st.sampled_from(NOT_REACHED), st.floats(0, 200_000), st.integers(0, 1))
def test_expired_when_old_or_when_the_retry_would_be_too_late(
    outcome: DialOutcome, age: float, attempts: int
) -> None:
    task = reserved(attempts=attempts)
    decision = after_attempt(task, outcome, T0 + age, POLICY)
    next_due = T0 + age + POLICY.interval(attempts + 1)
    if next_due >= T0 + 86_400:
        assert decision.next is Next.EXPIRED
        assert apply(task, decision, T0 + age).state is TaskState.EXPIRED
    else:
        assert (decision.next, decision.due_at) == (Next.RETRY, next_due)
    assert decision.attempts == attempts + 1


@given(st.integers(0, 2), st.floats(-1_000, 1_000), st.floats(0, 80_000))
def test_an_agent_that_did_not_answer_is_not_a_customer_attempt(
    attempts: int, place: float, age: float
) -> None:
    task = reserved(attempts=attempts, enqueued_at=T0 + place)
    decision = after_attempt(task, DialOutcome.AGENT_NO_ANSWER, T0 + age, POLICY)
    assert (decision.next, decision.event, decision.attempts) == (
        Next.REQUEUE, TaskEvent.RELEASE, attempts)
    back = apply(task, decision, T0 + age)
    assert (back.state, back.enqueued_at, back.attempts, back.agent_id) == (
        TaskState.QUEUED, T0 + place, attempts, None)


def test_an_agent_no_answer_past_the_deadline_expires() -> None:
    decision = after_attempt(reserved(attempts=1), DialOutcome.AGENT_NO_ANSWER, T0 + 90_000,
                             POLICY)
    assert (decision.next, decision.attempts) == (Next.EXPIRED, 1)


def test_retries_work_from_active_too() -> None:
    active = transition(reserved(), TaskEvent.CONNECT, T0)
    for outcome, age in ((DialOutcome.BUSY, 0.0), (DialOutcome.BUSY, 90_000.0),
                         (DialOutcome.ANSWERED, 0.0)):
        decision = after_attempt(active, outcome, T0 + age, POLICY)
        apply(active, decision, T0 + age)  # no InvalidTransition


@given(st.sampled_from(list(DialOutcome)), st.integers(0, 5), st.floats(0, 200_000),
       st.booleans())
def test_every_decision_applies_to_a_reserved_task(
    outcome: DialOutcome, attempts: int, age: float, never_expire: bool
) -> None:
    policy = replace(POLICY, max_attempts=6, expire_after=None if never_expire else 86_400.0)
    task = reserved(attempts=attempts)
    decision = after_attempt(task, outcome, T0 + age, policy)
    after = apply(task, decision, T0 + age)
    assert after.attempts <= policy.max_attempts
    assert after.enqueued_at == task.enqueued_at
    if decision.next is Next.RETRY:
        assert after.due_at is not None and after.due_at > T0 + age
    if never_expire:
        assert decision.next is not Next.EXPIRED


def test_check_expired_for_waiting_tasks() -> None:
    queued = Task(id="cb", kind=TaskKind.CALLBACK, skill="s", created_at=T0, enqueued_at=T0)
    scheduled = replace(queued, state=TaskState.SCHEDULED, due_at=T0 + 60)
    assert check_expired(queued, T0 + 86_399, POLICY) is None
    for task in (queued, scheduled):
        decision = check_expired(task, T0 + 86_400, POLICY)
        assert isinstance(decision, Decision) and decision.next is Next.EXPIRED
        assert apply(task, decision, T0 + 86_400).state is TaskState.EXPIRED
    assert check_expired(reserved(), T0 + 90_000, POLICY) is None  # after_attempt decides
    assert check_expired(queued, T0 + 10**9, replace(POLICY, expire_after=None)) is None


@pytest.mark.parametrize(("kw", "key"), [
    ({"max_attempts": 0}, "callbacks.max_attempts"),
    ({"intervals": ()}, "callbacks.intervals"),
    ({"intervals": (60.0, 0.0)}, "callbacks.intervals"),
    ({"expire_after": 0.0}, "callbacks.expire_after"),
])
def test_bad_retry_policies(kw: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RetryPolicy(**kw)  # type: ignore[arg-type]
    assert caught.value.key == key


@given(st.text(max_size=60))
def test_reference_is_eight_speakable_digits_and_stable(task_id: str) -> None:
    ref = reference(task_id)
    assert len(ref) == 8 and ref.isascii() and ref.isdigit()
    assert reference(task_id) == ref
    assert is_reference(ref)


@given(st.text(min_size=1, max_size=40), st.integers(0, 7), st.integers(1, 9))
def test_one_mistyped_digit_is_caught(task_id: str, pos: int, delta: int) -> None:
    ref = reference(task_id)
    typo = ref[:pos] + str((int(ref[pos]) + delta) % 10) + ref[pos + 1:]
    assert not is_reference(typo)


def test_references_differ_and_odd_input_is_refused() -> None:
    refs = {reference(f"task-{n}") for n in range(1000)}
    assert len(refs) > 990
    for bad in ["", "1234567", "123456789", "1234567a", "١٢٣٤٥٦٧٨"]:
        assert not is_reference(bad)
