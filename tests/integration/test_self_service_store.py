"""Calling again against a real Redis (store/self_service.py): a caller's items, keep,
cancel, move and agent-now on callbacks with their audit, addenda to a voice request, and a
text reply delivered by a messenger (or refused, then the call path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from poolkit import T0, StepClock

from acdkit.config import RequestSettings
from acdkit.core.callbacks import RetryPolicy
from acdkit.core.errors import Refused
from acdkit.core.numbers import NumberPolicy
from acdkit.core.requests import RequestEvent, RequestStatus
from acdkit.core.self_service import ItemKind
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.messaging import FileMessenger
from acdkit.ports import MessageResult
from acdkit.services.voice_requests import Delivery
from acdkit.store import self_service as actions
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.requests import RequestStore, store_reply, submit_request
from acdkit.testing import FakeJobQueue

pytestmark = pytest.mark.integration

NUMBER = "+12015550123"
CHANNEL = "PJSIP/caller-0000002a"


@pytest.fixture
def store(pool: Pool) -> CallbackStore:
    return CallbackStore(pool, lock_ttl=5.0)


@pytest.fixture
def requests(pool: Pool, tmp_path: Path) -> RequestStore:
    return RequestStore(pool, RequestSettings(audio_dir=str(tmp_path / "audio")))


async def booked(store: CallbackStore, *, at: float = T0, due_at: float | None = None) -> Task:
    task = Task(id="cb1", kind=TaskKind.CALLBACK, skill="sales", created_at=T0 + 5,
                enqueued_at=due_at or at, due_at=due_at, number=NUMBER,
                state=TaskState.SCHEDULED if due_at else TaskState.QUEUED)
    result = await store.book_callback(task, policy=NumberPolicy(), caller_number=NUMBER,
                                       now=T0 + 5)
    return result.task


async def events(store: CallbackStore, task_id: str) -> list[str]:
    return [e.event for e in await store.pool.audit.history(task_id)]


async def test_items_are_callbacks_then_open_requests(store: CallbackStore,
                                                      requests: RequestStore) -> None:
    await booked(store)
    request = await submit_request(store.pool, FakeJobQueue(), number=NUMBER, skill="sales",
                                   audio=b"\0" * 1600, fmt="sln", now=T0,
                                   source="test", settings=requests.settings)
    items = await actions.items_for(store, requests, NUMBER)
    assert [(i.kind, i.task_id) for i in items] == [(ItemKind.CALLBACK, "cb1"),
                                                   (ItemKind.REQUEST, request.id)]
    await requests.move(request.id, RequestEvent.CLOSE, T0 + 1)
    assert [i.kind for i in await actions.items_for(store, requests, NUMBER)] == \
        [ItemKind.CALLBACK]
    assert await actions.items_for(store, requests, "+12015550999") == []


async def test_keep_move_cancel_are_audited_with_the_channel(store: CallbackStore) -> None:
    await booked(store)
    await actions.keep(store, "cb1", T0 + 10, CHANNEL)
    moved = await actions.move(store, "cb1", T0 + 3600, T0 + 20, CHANNEL)
    assert moved.state is TaskState.SCHEDULED and moved.due_at == T0 + 3600
    assert await store.redis.zscore(store.keys.due, "cb1") == T0 + 3600  # in the due set
    moved = await actions.move(store, "cb1", T0 + 7200, T0 + 30, CHANNEL)  # again, scheduled
    assert moved.due_at == T0 + 7200
    cancelled = await actions.cancel(store, "cb1", T0 + 40, CHANNEL)
    assert cancelled.state is TaskState.CANCELLED
    assert await store.pending_for(NUMBER) == []
    story = await store.pool.audit.history("cb1")
    mine = [e for e in story if e.event.startswith("caller_")]
    assert [e.event for e in mine] == ["caller_kept", "caller_moved", "caller_moved",
                                       "caller_cancelled"]
    assert {e.fields["channel"] for e in mine} == {CHANNEL}


async def test_nothing_changes_once_an_agent_is_on_it(store: CallbackStore,
                                                      clock: StepClock) -> None:
    from poolkit import ready_agent

    await booked(store)
    await ready_agent(store.pool, "a1")
    assert await store.pool.claim("a1", "cb1", T0 + 10)
    for change in (actions.cancel(store, "cb1", T0 + 11, CHANNEL),
                   actions.move(store, "cb1", T0 + 3600, T0 + 11, CHANNEL)):
        with pytest.raises(Refused):
            await change
    assert (await store.pool.get_task("cb1")).state is TaskState.RESERVED  # type: ignore[union-attr]


async def test_agent_now_takes_the_callbacks_place(store: CallbackStore) -> None:
    await booked(store, at=T0 - 300)  # the instant callback kept its caller's place
    call = Task(id="call1", kind=TaskKind.CALL, skill="sales", created_at=T0 + 60,
                enqueued_at=T0 + 60, number="12015550123")
    live = await actions.go_live(store, "cb1", call, T0 + 60, CHANNEL)
    assert live.enqueued_at == T0 - 300 and live.attributes["from_callback"] == "cb1"
    ended = await store.pool.get_task("cb1")
    assert ended is not None and ended.state is TaskState.CANCELLED
    assert ended.outcome == "became call call1"
    assert "caller_took_live" in await events(store, "cb1")
    later = Task(id="later", kind=TaskKind.CALL, skill="sales", created_at=T0 + 30,
                 enqueued_at=T0 + 30)
    await store.pool.add_task(later, T0 + 30)
    await store.pool.add_task(live, T0 + 60)
    assert await store.pool.queue_position("call1") == 0
    assert await store.pool.queue_position("later") == 1


async def test_a_scheduled_callback_goes_live_with_its_booking_time(
        store: CallbackStore) -> None:
    await booked(store, due_at=T0 + 3600)
    call = Task(id="call1", kind=TaskKind.CALL, skill="sales", created_at=T0 + 60,
                enqueued_at=T0 + 60)
    live = await actions.go_live(store, "cb1", call, T0 + 60, CHANNEL)
    assert live.enqueued_at == T0 + 5  # booked at T0 + 5, not its due time


async def test_an_addendum_joins_the_same_work_order(store: CallbackStore,
                                                     requests: RequestStore) -> None:
    task = await submit_request(store.pool, FakeJobQueue(), number=NUMBER, skill="sales",
                                audio=b"\0" * 1600, fmt="sln", now=T0, source="test",
                                settings=requests.settings)
    name = await actions.add_to_request(requests, task.id, "vr-x-add-1", b"RIFF....",
                                        "wav", T0 + 5, CHANNEL)
    assert requests.audio_path(name).read_bytes() == b"RIFF...."
    request = await requests.get(task.id)
    assert request is not None and request.addenda == "vr-x-add-1"
    added = [e for e in await store.pool.audit.history(task.id)
             if e.event == "request_addendum"]
    assert added and added[0].fields["channel"] == CHANNEL
    await store_reply(requests, FakeJobQueue(), task.id, T0 + 9, text="done")
    with pytest.raises(Refused):
        await actions.add_to_request(requests, task.id, "vr-x-add-2", b"RIFF", "wav",
                                     T0 + 10, CHANNEL)


class Refusing:
    name = "sip"

    async def send(self, number: str, text: str) -> MessageResult:
        return MessageResult(False, "405 Method Not Allowed")


async def _replied(store: CallbackStore, requests: RequestStore) -> str:
    task = await submit_request(store.pool, FakeJobQueue(), number=NUMBER, skill="sales",
                                audio=b"\0" * 1600, fmt="sln", now=T0, source="test",
                                settings=requests.settings)
    await store_reply(requests, FakeJobQueue(), task.id, T0 + 9, text="Ships Monday.")
    return task.id


def _delivery(store: CallbackStore, requests: RequestStore, messenger: object,
              clock: StepClock) -> Delivery:
    return Delivery(requests, store, FakeJobQueue(), RetryPolicy(), NumberPolicy(),
                    wait_timeout=0.5, clock=clock, messenger=messenger)  # type: ignore[arg-type]


async def test_a_text_reply_goes_by_message_once(store: CallbackStore, requests: RequestStore,
                                                 clock: StepClock, tmp_path: Path) -> None:
    task_id = await _replied(store, requests)
    out = tmp_path / "messages.jsonl"
    delivery = _delivery(store, requests, FileMessenger(out), clock)
    assert await delivery.run(task_id) == "messaged"
    [line] = out.read_text().splitlines()
    assert json.loads(line)["to"] == NUMBER and "Ships Monday." in json.loads(line)["text"]
    request = await requests.get(task_id)
    assert request is not None and request.status is RequestStatus.DELIVERED
    assert await store.last_attempt(task_id) is None  # no call
    assert await delivery.run(task_id) == "nothing"


async def test_a_refused_message_leaves_the_call(store: CallbackStore, requests: RequestStore,
                                                 clock: StepClock) -> None:
    task_id = await _replied(store, requests)
    outcome = await _delivery(store, requests, Refusing(), clock).run(task_id)
    # The call path ran: its calling-hours gate postpones the call at T0 (night in the
    # callee's zone) or it opens attempt 1.
    assert outcome in ("postponed", "failed"), outcome
    tried = [e for e in await store.pool.audit.history(task_id) if e.event == "reply_message"]
    assert [e.fields["outcome"] for e in tried] == ["refused"]
    assert tried[0].fields["detail"] == "405 Method Not Allowed"
    await _delivery(store, requests, Refusing(), clock).run(task_id)  # the retry: no message
    tried = [e for e in await store.pool.audit.history(task_id) if e.event == "reply_message"]
    assert len(tried) == 1


async def test_a_waiting_callback_stays_in_line_after_keep(store: CallbackStore) -> None:
    await booked(store)
    await actions.keep(store, "cb1", T0 + 10, CHANNEL)
    task = await store.pool.get_task("cb1")
    assert task is not None and task.state is TaskState.QUEUED
