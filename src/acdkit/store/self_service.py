"""What a caller who calls again may do with what it asked for (core/self_service.py):
find its pending callbacks and open voice requests, keep, cancel or move a callback, or
turn it into the live call. Every action is audited on the callback's own stream with the
channel it came from (``caller_<action>``, field ``channel``), next to the state change the
pool audits itself, so ``acdkit callbacks show ID`` tells who did what from where.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, tzinfo

from acdkit.core.callbacks import reference
from acdkit.core.errors import AcdError, InvalidTransition, NoSuchTask, Refused
from acdkit.core.self_service import WAITING, Item, ItemKind, confirmation_text, is_open
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.ports import MessageResult, Messenger
from acdkit.store import lifecycle
from acdkit.store.callbacks import CallbackStore
from acdkit.store.codec import encode_float
from acdkit.store.requests import RequestStore


async def items_for(callbacks: CallbackStore, requests: RequestStore | None,
                    number: str) -> list[Item]:
    """The pending callbacks of ``number`` (E.164), oldest place first, then its open voice
    requests, oldest first."""
    found = [Item(ItemKind.CALLBACK, t.id, reference(t.id), state=t.state, due_at=t.due_at)
             for t in await callbacks.pending_for(number) if t.kind is TaskKind.CALLBACK]
    if requests is not None:
        found += [Item(ItemKind.REQUEST, r.task_id, r.ref, status=r.status)
                  for r in await requests.of_number(number) if is_open(r.status)]
    return found


async def _waiting(store: CallbackStore, task_id: str) -> Task:
    task = await lifecycle.callback(store, task_id)
    if task.state not in WAITING:
        raise Refused(f"callback {task_id} is {task.state.value}: an agent is on it")
    return task


async def keep(store: CallbackStore, task_id: str, now: float, channel: str) -> None:
    """The caller heard its callback and keeps it."""
    await store.pool.audit.append(task_id, "caller_kept", now=now, channel=channel)


async def cancel(store: CallbackStore, task_id: str, now: float, channel: str) -> Task:
    """Cancel a waiting callback for its caller. Raises ``Refused`` once an agent is on it,
    ``NoSuchTask``."""
    await _waiting(store, task_id)
    try:
        cancelled = await lifecycle.cancel_callback(store, task_id, now,
                                                    "cancelled by the caller")
    except InvalidTransition as exc:
        raise Refused(f"callback {task_id} can no longer be cancelled: {exc}") from None
    await store.pool.audit.append(task_id, "caller_cancelled", now=now, channel=channel)
    return cancelled


async def move(store: CallbackStore, task_id: str, due_at: float, now: float,
               channel: str) -> Task:
    """Move a waiting callback to ``due_at`` (from ``parse_hhmm``, in the future): it waits
    in the due set like a callback booked for that time. Raises ``Refused``, ``NoSuchTask``."""
    task = await _waiting(store, task_id)
    pool = store.pool
    try:
        if task.state is TaskState.QUEUED:
            await pool.move_task(task_id, TaskEvent.RESCHEDULE, now, due_at=due_at)
        moved = await pool.update_task(task_id, now, due_at=due_at, enqueued_at=due_at)
    except InvalidTransition as exc:
        raise Refused(f"callback {task_id} can no longer be moved: {exc}") from None
    await pool.audit.append(task_id, "caller_moved", now=now, channel=channel,
                            due=encode_float(due_at),
                            was=encode_float(task.due_at) if task.due_at else "")
    return moved


async def go_live(store: CallbackStore, task_id: str, call: Task, now: float,
                  channel: str) -> Task:
    """The caller wants an agent now: the callback ends (cancelled, ``became call <id>``) and
    ``call`` (this call's task, not stored yet) takes its place in line: the callback's
    enqueue time, or its booking time when that is earlier (a scheduled one). Returns the
    call task to queue. Raises ``Refused`` once an agent is on the callback."""
    task = await _waiting(store, task_id)
    try:
        await lifecycle.cancel_callback(store, task_id, now, f"became call {call.id}")
    except (InvalidTransition, NoSuchTask) as exc:
        raise Refused(f"callback {task_id} is being dialed: {exc}") from None
    await store.pool.audit.append(task_id, "caller_took_live", now=now, channel=channel,
                                  call=call.id)
    place = min(task.enqueued_at, task.created_at)
    attributes = {**call.attributes, "from_callback": task_id}
    # A dialplan-mode callback (skill queue:<name>, required attributes) is no Stasis skill.
    skill = call.skill if task.required or not task.skill else task.skill
    return replace(call, enqueued_at=place, attributes=attributes, skill=skill)


async def confirm(store: CallbackStore, messenger: Messenger, task: Task, tz: tzinfo,
                  now: float) -> None:
    """Text the customer its callback's time and reference (``callbacks.confirm_by_message``);
    the outcome goes to the callback's history (``confirmation_message``)."""
    due = datetime.fromtimestamp(task.due_at, tz) if task.due_at is not None and \
        task.state is TaskState.SCHEDULED else None
    try:
        result = await messenger.send(task.number, confirmation_text(reference(task.id), due))
    except AcdError as exc:
        result = MessageResult(False, str(exc)[:200])
    await store.pool.audit.append(task.id, "confirmation_message", now=now, via=messenger.name,
                                  outcome="sent" if result.sent else "refused",
                                  detail=result.detail)


async def add_to_request(requests: RequestStore, task_id: str, recording: str,
                         audio: bytes, fmt: str, now: float, channel: str) -> str:
    """Attach the caller's recorded addendum (stored recording ``recording``) to its voice
    request: the same work order. Raises ``NotFound``, ``Refused`` (answered or closed)."""
    return await requests.add_addendum(task_id, recording, audio, fmt, now, channel=channel)
