"""Callbacks in Redis: booking (dedupe, limits), attempts, the dial lock, commands, recovery."""

from __future__ import annotations

from dataclasses import replace

import pytest
from poolkit import T0, StepClock, ready_agent

from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import InvalidInput, NotFound, NumberRejected, Refused
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.services.maintenance import recover_callbacks
from acdkit.store import lifecycle
from acdkit.store.callbacks import AttemptState, CallbackStore
from acdkit.store.pool import Pool
from acdkit.testing import FakeJobQueue

pytestmark = pytest.mark.integration

NUMBER = "+12015550123"
OTHER = "+12015550124"
CALLER = "+12015550199"
POLICY = NumberPolicy()


@pytest.fixture
def store(pool: Pool) -> CallbackStore:
    return CallbackStore(pool, lock_ttl=5.0)


def callback(task_id: str, number: str = NUMBER, *, skill: str = "sales",
             enqueued_at: float = T0, due_at: float | None = None) -> Task:
    state = TaskState.SCHEDULED if due_at is not None else TaskState.QUEUED
    return Task(id=task_id, kind=TaskKind.CALLBACK, skill=skill, created_at=T0,
                enqueued_at=enqueued_at, state=state, due_at=due_at, number=number)


async def book(store: CallbackStore, task: Task, policy: NumberPolicy = POLICY,
               caller: str = CALLER):  # type: ignore[no-untyped-def]
    return await store.book_callback(task, policy=policy, caller_number=caller, now=T0)


async def events(store: CallbackStore, task_id: str) -> list[str]:
    return [e.event for e in await store.pool.audit.history(task_id)]


# -- booking ------------------------------------------------------------------------------------


async def test_a_second_request_for_the_same_number_updates_the_pending_callback(
        store: CallbackStore) -> None:
    first = await book(store, callback("cb1", enqueued_at=T0 - 300))
    assert first.updated is False
    second = await book(store, callback("cb2", due_at=T0 + 3600, enqueued_at=T0 + 3600))
    assert second.updated is True and second.task.id == "cb1"
    assert await store.pool.get_task("cb2") is None
    stored = await store.pool.get_task("cb1")
    assert stored is not None
    assert stored.state is TaskState.SCHEDULED and stored.due_at == T0 + 3600
    assert stored.enqueued_at == T0 - 300  # the better place is kept
    assert [t.id for t in await store.pending_for(NUMBER)] == ["cb1"]
    assert await events(store, "cb1") == ["add", "booked", "reschedule", "update", "updated"]


async def test_an_instant_request_brings_a_scheduled_callback_forward(
        store: CallbackStore) -> None:
    await book(store, callback("cb1", due_at=T0 + 3600, enqueued_at=T0 + 3600))
    result = await book(store, callback("cb2", enqueued_at=T0 - 60))
    assert result.updated and result.task.state is TaskState.QUEUED
    assert result.task.enqueued_at == T0 - 60
    assert await store.pool.queue_position("cb1") == 0


async def test_more_pending_callbacks_than_the_policy_allows_are_refused(
        store: CallbackStore) -> None:
    await book(store, callback("cb1"))
    with pytest.raises(NumberRejected) as refused:
        await book(store, callback("cb2", skill="support"))
    assert refused.value.reason == "too_many_pending"
    two = replace(POLICY, max_pending_per_number=2)
    assert (await book(store, callback("cb3", skill="support"), two)).updated is False
    assert {t.id for t in await store.pending_for(NUMBER)} == {"cb1", "cb3"}


async def test_ended_callbacks_leave_the_index(store: CallbackStore, clock: StepClock) -> None:
    await book(store, callback("cb1"))
    await store.pool.move_task("cb1", TaskEvent.CANCEL, T0)
    assert await store.pending_for(NUMBER) == []  # a stale id is dropped on the way
    assert (await book(store, callback("cb2"))).updated is False
    task = await store.pool.get_task("cb2")
    assert task is not None
    await store.forget_callback(task)
    assert await store.redis.smembers(store.keys.callbacks_of(NUMBER)) == set()


async def test_requests_are_rate_limited_per_calling_number(store: CallbackStore) -> None:
    policy = replace(POLICY, max_requests_per_caller=2, max_pending_per_number=5)
    for i, number in enumerate((NUMBER, OTHER)):
        await book(store, callback(f"cb{i}", number), policy)
    with pytest.raises(NumberRejected) as refused:
        await book(store, callback("cb9", "+12015550125"), policy)
    assert refused.value.reason == "rate_limited_caller"
    ttl = await store.redis.ttl(store.keys.rate("caller", CALLER))
    assert 0 < ttl <= policy.caller_window


async def test_requests_are_rate_limited_per_number_called_back(store: CallbackStore) -> None:
    policy = replace(POLICY, max_requests_per_caller=2)
    await book(store, callback("cb1"), policy, caller="+12015550101")
    await book(store, callback("cb2"), policy, caller="+12015550102")
    with pytest.raises(NumberRejected) as refused:
        await book(store, callback("cb3"), policy, caller="anonymous")  # not E.164: hashed
    assert refused.value.reason == "rate_limited_number"


async def test_a_number_dialed_too_often_cannot_book(store: CallbackStore) -> None:
    policy = replace(POLICY, max_attempts_per_number=1)
    await store.open_attempt("cbx", 1, "a1", T0, number=NUMBER)
    await store.finish_attempt("cbx", 1, DialOutcome.NO_ANSWER, T0)
    assert (await store.dial_count(NUMBER))[0] == 1
    with pytest.raises(NumberRejected) as refused:
        await book(store, callback("cb1"), policy)
    assert refused.value.reason == "rate_limited_number"


async def test_booking_takes_only_new_callbacks(store: CallbackStore) -> None:
    with pytest.raises(InvalidInput):
        await book(store, replace(callback("cb1"), kind=TaskKind.CALL))


# -- attempts, the fence, the lock, commands ----------------------------------------------------


async def test_an_attempt_opens_once_and_pushes_its_command_once(store: CallbackStore) -> None:
    cmd = {"op": "dial_back", "task_id": "cb1", "attempt": 1, "agent_id": "a1"}
    assert await store.open_attempt("cb1", 1, "a1", T0, number=NUMBER, command=cmd)
    assert not await store.open_attempt("cb1", 1, "a2", T0 + 1, number=NUMBER, command=cmd)
    assert await store.queued_commands() == [cmd]
    attempt = await store.get_attempt("cb1", 1)
    assert attempt is not None and attempt.agent_id == "a1"
    assert (attempt.agent_leg, attempt.customer_leg) == ("cb-cb1-1-a", "cb-cb1-1-c")
    assert await store.next_command(1.0) == cmd
    assert await store.next_command(0.1) is None


async def test_the_first_outcome_wins_and_a_late_waiter_still_sees_it(
        store: CallbackStore) -> None:
    await store.open_attempt("cb1", 1, "a1", T0, number=NUMBER)
    assert await store.update_attempt("cb1", 1, T0, state=AttemptState.RINGING_AGENT)
    assert await store.finish_attempt("cb1", 1, DialOutcome.BUSY, T0 + 5) is DialOutcome.BUSY
    assert await store.finish_attempt("cb1", 1, DialOutcome.ANSWERED, T0 + 6) \
        is DialOutcome.BUSY
    assert await store.wait_attempt("cb1", 1, 1.0) is DialOutcome.BUSY
    assert await store.wait_attempt("cb1", 1, 0.1) is DialOutcome.BUSY  # list consumed
    assert not await store.update_attempt("cb1", 1, T0 + 7, state="connected")
    attempt = await store.get_attempt("cb1", 1)
    assert attempt is not None and attempt.state is AttemptState.ENDED
    assert await events(store, "cb1") == ["attempt_requested", "attempt_ringing_agent",
                                          "attempt_busy"]


async def test_waiting_for_an_attempt_without_outcome_times_out(store: CallbackStore) -> None:
    await store.open_attempt("cb1", 1, "a1", T0)
    assert await store.wait_attempt("cb1", 1, 0.3) is None
    with pytest.raises(NotFound):
        await store.update_attempt("cb1", 2, state="connected")
    with pytest.raises(InvalidInput):
        await store.update_attempt("cb1", 1, outcome="answered")


async def test_the_dial_lock_has_one_holder_and_only_it_releases(store: CallbackStore) -> None:
    token = await store.acquire_dial_lock("cb1")
    assert token is not None
    assert await store.acquire_dial_lock("cb1") is None
    assert not await store.release_dial_lock("cb1", "not-the-token")
    assert await store.renew_dial_lock("cb1", token)
    assert await store.release_dial_lock("cb1", token)
    assert not await store.dial_lock_held("cb1")


async def test_malformed_commands_are_skipped(store: CallbackStore) -> None:
    await store.redis.rpush(store.keys.commands, "not json", '{"no": "op"}')
    await store.push_command({"op": "dial_back", "task_id": "cb1"})
    assert await store.next_command(0.5) == {"op": "dial_back", "task_id": "cb1"}
    with pytest.raises(InvalidInput):
        await store.push_command({"task_id": "no op"})


# -- recovery and the admin's actions -------------------------------------------------------------


async def test_recover_re_enqueues_only_what_nobody_works_on(store: CallbackStore) -> None:
    jobs = FakeJobQueue()
    await ready_agent(store.pool, "a1")
    await book(store, callback("cb1"))
    assert await store.pool.claim("a1", "cb1", T0)
    assert await recover_callbacks(store, jobs) == ["dial-cb1-1"]  # never asked for
    cmd = {"op": "dial_back", "task_id": "cb1", "attempt": 1, "agent_id": "a1"}
    await store.open_attempt("cb1", 1, "a1", T0, number=NUMBER, command=cmd)
    assert await recover_callbacks(store, jobs) == []  # serve has not taken the command yet
    await store.next_command(0.1)
    token = await store.acquire_dial_lock("cb1")
    assert token is not None
    assert await recover_callbacks(store, jobs) == []  # a job holds the lock
    await store.release_dial_lock("cb1", token)
    assert await recover_callbacks(store, jobs) == ["dial-cb1-1"]  # its job died
    await store.mark_decided("cb1", 1, "requeue")
    assert await recover_callbacks(store, jobs) == ["dial-cb1-2"]
    assert [j[3] for j in jobs.jobs] == ["dial-cb1-1", "dial-cb1-2"]


async def test_cancel_frees_the_agent_and_replay_refuses_a_live_callback(
        store: CallbackStore) -> None:
    await ready_agent(store.pool, "a1")
    await book(store, callback("cb1"))
    assert await store.pool.claim("a1", "cb1", T0)
    with pytest.raises(Refused, match="only a failed or expired"):
        await lifecycle.replay_callback(store, "cb1", T0)
    cancelled = await lifecycle.cancel_callback(store, "cb1", T0 + 1)
    assert cancelled.state is TaskState.CANCELLED
    agent = await store.pool.get_agent("a1")
    assert agent is not None and agent.task_id is None
    assert await store.pending_for(NUMBER) == []


WITHHELD = ("", "anonymous", "Anonymous", "unknown", "restricted", "<unknown>", "Private",
            " ")


async def test_withheld_caller_ids_share_one_limit_per_trunk(store: CallbackStore) -> None:
    """One caller hiding its number books no more than an identified one: every withheld or
    non-digit caller ID on the same trunk counts against one subject."""
    policy = replace(POLICY, max_requests_per_caller=5)
    booked, refused = [], []
    for i, caller in enumerate(WITHHELD):
        try:
            await store.book_callback(callback(f"cb{i}", f"+1201555{i:04d}"), policy=policy,
                                      caller_number=caller, now=T0,
                                      line=f"PJSIP/carrier-0000001{i}")
            booked.append(caller)
        except NumberRejected as err:
            assert err.reason == "rate_limited_caller"
            refused.append(caller)
    assert len(booked) == 5 and len(refused) == 3, (booked, refused)
    # Another trunk's withheld callers, and identified callers, have limits of their own.
    await store.book_callback(callback("cb-other", "+12015559001"), policy=policy,
                              caller_number="anonymous", now=T0, line="PJSIP/did-200-0000002a")
    await store.book_callback(callback("cb-known", "+12015559002"), policy=policy,
                              caller_number=CALLER, now=T0, line="PJSIP/carrier-0000003a")


async def test_replay_never_pulls_back_a_callback_that_came_alive_meanwhile(
        store: CallbackStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between replay's read of a failed callback and its move, another admin replays it and
    an agent takes it: the late replay is refused and the agent keeps the callback."""
    await ready_agent(store.pool, "a1")
    await book(store, callback("cb1"))
    await store.pool.move_task("cb1", TaskEvent.FAIL, T0, outcome="no_answer after 3 attempts")
    read = store.pool.get_task

    async def read_then_race(task_id: str) -> Task | None:
        seen = await read(task_id)
        monkeypatch.setattr(store.pool, "get_task", read)
        await lifecycle.replay_callback(store, "cb1", T0 + 1)  # the other admin
        assert await store.pool.claim("a1", "cb1", T0 + 2)
        return seen

    monkeypatch.setattr(store.pool, "get_task", read_then_race)
    with pytest.raises(Refused, match="cb1 is reserved"):
        await lifecycle.replay_callback(store, "cb1", T0 + 3)
    task = await store.pool.get_task("cb1")
    assert task is not None and (task.state, task.agent_id) == (TaskState.RESERVED, "a1")
    agent = await store.pool.get_agent("a1")
    assert agent is not None and agent.task_id == "cb1"
    assert (await events(store, "cb1")).count("replayed") == 1


async def test_replay_puts_a_failed_callback_back_in_line_with_a_new_budget(
        store: CallbackStore) -> None:
    await book(store, callback("cb1"))
    await store.pool.update_task("cb1", T0, attempts=3)
    await store.pool.move_task("cb1", TaskEvent.FAIL, T0, outcome="busy after 3 attempts")
    await store.forget_callback(await store.pool.get_task("cb1"))  # type: ignore[arg-type]
    moved = await lifecycle.replay_callback(store, "cb1", T0 + 60)
    task = await store.pool.get_task("cb1")
    assert task == moved
    assert (task.state, task.attempts, task.created_at, task.outcome) == (
        TaskState.QUEUED, 0, T0 + 60, "")
    assert [t.id for t in await store.pending_for(NUMBER)] == ["cb1"]
    assert [t.id for _, t in await store.pool.candidates(["sales"], 5)] == ["cb1"]
    [replayed] = [e for e in await store.pool.audit.history("cb1") if e.event == "replayed"]
    assert replayed.fields["was"] == "failed" and replayed.fields["attempts"] == "3"
