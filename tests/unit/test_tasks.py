"""The task state machine (core/tasks.py) against an independent model of its rules."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acdkit.core.errors import InvalidTransition
from acdkit.core.tasks import (
    TERMINAL_STATES,
    Task,
    TaskEvent,
    TaskKind,
    TaskState,
    transition,
)

S, E = TaskState, TaskEvent
# The rules as docs/architecture.md §5 and the module describe them, written out again by hand.
MODEL: dict[tuple[TaskState, TaskEvent], TaskState] = {
    (S.SCHEDULED, E.DUE): S.QUEUED,
    (S.QUEUED, E.RESERVE): S.RESERVED,
    (S.RESERVED, E.RELEASE): S.QUEUED,
    (S.ACTIVE, E.RELEASE): S.QUEUED,
    (S.RESERVED, E.CONNECT): S.ACTIVE,
    (S.RESERVED, E.COMPLETE): S.COMPLETED,
    (S.ACTIVE, E.COMPLETE): S.COMPLETED,
    **{(s, E.FAIL): S.FAILED for s in (S.SCHEDULED, S.QUEUED, S.RESERVED, S.ACTIVE)},
    **{(s, E.CANCEL): S.CANCELLED for s in (S.SCHEDULED, S.QUEUED, S.RESERVED)},
    **{(s, E.EXPIRE): S.EXPIRED for s in (S.SCHEDULED, S.QUEUED, S.RESERVED, S.ACTIVE)},
    (S.QUEUED, E.ABANDON): S.ABANDONED,
    (S.RESERVED, E.ABANDON): S.ABANDONED,
    **{(s, E.RESCHEDULE): S.SCHEDULED
       for s in (S.QUEUED, S.RESERVED, S.ACTIVE, S.FAILED, S.EXPIRED)},
}
HOLDING = {S.RESERVED, S.ACTIVE}
T0 = 1_800_000_000.0


def make_task(**kw: object) -> Task:
    base = Task(id="t1", kind=TaskKind.CALLBACK, skill="sales", created_at=T0, enqueued_at=T0)
    return replace(base, **kw)  # type: ignore[arg-type]


steps = st.lists(
    st.tuples(
        st.sampled_from(list(TaskEvent)),
        st.sampled_from([None, "", "a1", "a2"]),  # agent id
        st.one_of(st.none(), st.floats(0, 86_400)),  # due_at offset
        st.floats(0, 3_600),  # time passing before the event
    ),
    max_size=40,
)


@given(st.sampled_from([S.QUEUED, S.SCHEDULED]), steps)
def test_random_event_sequences_keep_the_invariants(start: TaskState, seq: list) -> None:
    task = make_task(state=start)
    now = T0
    for event, agent_id, due_offset, dt in seq:
        now += dt
        due_at = None if due_offset is None else now + due_offset
        expected = MODEL.get((task.state, event))
        needs_arg = (event is E.RESERVE and not agent_id) or (
            event is E.RESCHEDULE and due_at is None)
        if expected is None or needs_arg:
            with pytest.raises(InvalidTransition):
                transition(task, event, now, agent_id=agent_id, due_at=due_at)
            continue
        new = transition(task, event, now, agent_id=agent_id, due_at=due_at, outcome="why")
        assert new.state is expected
        # a task is held by an agent exactly while reserved or active (terminal keeps history)
        if new.state in HOLDING:
            assert new.agent_id
        elif not new.terminal:
            assert new.agent_id is None
        # its place in line never gets worse, and RELEASE keeps it exactly
        assert new.enqueued_at <= task.enqueued_at
        if event is E.RELEASE:
            assert new.enqueued_at == task.enqueued_at
        if event is E.RESCHEDULE:
            assert new.due_at == due_at
        if event is E.RESERVE:
            assert new.agent_id == agent_id
        if event is E.CONNECT:
            assert new.agent_id == task.agent_id
        assert (new.id, new.kind, new.created_at, new.attempts) == (
            task.id, task.kind, task.created_at, task.attempts)
        task = new


@pytest.mark.parametrize("state", sorted(TERMINAL_STATES))
@pytest.mark.parametrize("event", list(TaskEvent))
def test_a_terminal_task_takes_only_a_replay(state: TaskState, event: TaskEvent) -> None:
    task = make_task(state=state, agent_id="a1")
    replay = event is E.RESCHEDULE and state in (S.FAILED, S.EXPIRED)
    if not replay:
        with pytest.raises(InvalidTransition):
            transition(task, event, T0 + 1, agent_id="a2", due_at=T0 + 60)
        return
    again = transition(task, event, T0 + 1, due_at=T0 + 60)
    assert (again.state, again.due_at, again.agent_id) == (S.SCHEDULED, T0 + 60, None)


def test_the_model_covers_every_pair_the_machine_accepts() -> None:
    for state in TaskState:
        for event in TaskEvent:
            task = make_task(state=state, agent_id="a1" if state in HOLDING else None)
            try:
                new = transition(task, event, T0, agent_id="a2", due_at=T0 + 5)
            except InvalidTransition:
                assert (state, event) not in MODEL
            else:
                assert MODEL[(state, event)] is new.state


@given(st.floats(-1e6, 1e6), st.floats(0, 1e6))
def test_release_keeps_the_original_place(age: float, later: float) -> None:
    task = make_task(enqueued_at=T0 + age)
    held = transition(transition(task, E.RESERVE, T0 + later, agent_id="a1"), E.CONNECT, T0)
    for state in (held, transition(task, E.RESERVE, T0, agent_id="a1")):
        back = transition(state, E.RELEASE, T0 + later + 10)
        assert (back.state, back.enqueued_at, back.agent_id) == (S.QUEUED, T0 + age, None)


def test_due_keeps_an_older_place_and_caps_a_future_one() -> None:
    kept = transition(make_task(state=S.SCHEDULED, enqueued_at=T0 - 600), E.DUE, T0)
    assert kept.enqueued_at == T0 - 600  # an instant callback that was rescheduled keeps it
    capped = transition(make_task(state=S.SCHEDULED, enqueued_at=T0 + 600), E.DUE, T0)
    assert capped.enqueued_at == T0


def test_reserve_needs_an_agent_and_reschedule_a_due_time() -> None:
    with pytest.raises(InvalidTransition, match="without an agent"):
        transition(make_task(), E.RESERVE, T0)
    with pytest.raises(InvalidTransition, match="without a due time"):
        transition(make_task(), E.RESCHEDULE, T0)


def test_outcome_is_recorded_and_kept() -> None:
    done = transition(make_task(state=S.ACTIVE, agent_id="a1"), E.COMPLETE, T0, outcome="sold")
    assert (done.state, done.outcome, done.terminal) == (S.COMPLETED, "sold", True)
    failed = transition(make_task(outcome="busy"), E.FAIL, T0)
    assert failed.outcome == "busy"


def test_invalid_transition_names_state_and_event() -> None:
    with pytest.raises(InvalidTransition) as caught:
        transition(make_task(state=S.COMPLETED), E.CANCEL, T0)
    assert (caught.value.state, caught.value.event) == (S.COMPLETED, E.CANCEL)
