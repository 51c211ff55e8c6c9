"""What an admin does with callbacks: list them, cancel one, replay a failed or expired one,
purge old ended ones. Every change goes through the pool (audited); purging deletes the task
and its attempt records but keeps the audit streams, so ``callbacks show`` still tells the
story of a purged callback from its history.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import replace
from typing import cast

from acdkit.core.agents import AgentEvent
from acdkit.core.errors import (
    ClaimLost,
    InvalidInput,
    InvalidTransition,
    NoSuchAgent,
    NoSuchTask,
    Refused,
)
from acdkit.core.routing import pool_score
from acdkit.core.tasks import TERMINAL_STATES, Task, TaskEvent, TaskKind, TaskState
from acdkit.store.base import flat
from acdkit.store.callbacks import CallbackStore
from acdkit.store.codec import encode_float, task_to_hash
from acdkit.store.scripts import source

REPLAYABLE = (TaskState.FAILED, TaskState.EXPIRED)
_PAGE = 500


async def callback(store: CallbackStore, task_id: str) -> Task:
    """The callback ``task_id``; raises ``NoSuchTask`` (also for a task of another kind)."""
    task = await store.pool.get_task(task_id)
    if task is None or task.kind is not TaskKind.CALLBACK:
        raise NoSuchTask(f"no callback {task_id!r} (see `acdkit callbacks list`)")
    return task


async def list_callbacks(store: CallbackStore, *, states: Collection[TaskState] = (),
                         skill: str | None = None, since: float | None = None,
                         limit: int = 10_000) -> list[Task]:
    """Callbacks created at or after ``since``, newest first, in ``states`` (any when empty)
    and ``skill`` (any when None); at most ``limit``."""
    redis, keys = store.redis, store.keys
    found: list[Task] = []
    offset = 0
    while len(found) < limit:
        ids = cast(list[str], await redis.zrevrangebyscore(
            keys.tasks, "+inf", encode_float(since) if since is not None else "-inf",
            start=offset, num=_PAGE))
        if not ids:
            break
        offset += len(ids)
        for task in [await store.pool.get_task(i) for i in ids]:
            if task is not None and task.kind is TaskKind.CALLBACK \
                    and (not states or task.state in states) \
                    and (skill is None or task.skill == skill):
                found.append(task)
    return found[:limit]


async def cancel_callback(store: CallbackStore, task_id: str, now: float,
                          reason: str = "cancelled") -> Task:
    """Cancel a scheduled, queued or reserved callback (a reserved one's agent goes to
    wrap-up). Raises ``NoSuchTask``, ``InvalidTransition`` in other states."""
    task = await callback(store, task_id)
    cancelled = await store.pool.move_task(task_id, TaskEvent.CANCEL, now, outcome=reason)
    if task.agent_id:
        with contextlib.suppress(ClaimLost, InvalidTransition, NoSuchAgent):  # let go already
            await store.pool.move_agent(task.agent_id, AgentEvent.END, now, expect_task=task_id)
    await store.forget_callback(cancelled)
    return cancelled


async def replay_callback(store: CallbackStore, task_id: str, now: float) -> Task:
    """Put a failed or expired callback back in line, due ``now``, with a fresh retry budget
    (attempts 0, expiry counted from ``now``); its history and attempt records stay. The
    check and the move are one step (``lua/replay.lua``): a callback that is live again by
    then is left alone.

    Raises ``NoSuchTask``, or ``Refused`` naming the state when it is neither failed nor
    expired.
    """
    task = await callback(store, task_id)
    if task.state not in REPLAYABLE:
        raise _not_replayable(task_id, task.state.value)
    pool = store.pool
    # The retry policy counts expiry from created_at: the replay starts a new budget.
    moved = replace(task, state=TaskState.QUEUED, agent_id=None, attempts=0, created_at=now,
                    outcome="", due_at=now, enqueued_at=min(task.enqueued_at, now))
    after = {**task_to_hash(moved), "score": encode_float(pool_score(moved, pool.rules))}
    status = await store.redis.register_script(source("replay"))(
        keys=[store.keys.task(task_id), store.keys.callbacks_of(task.number)],
        args=pool._argv(now, task_id, task.outcome, str(task.attempts),
                        encode_float(task.created_at), *flat(after)))
    if status == "missing":
        raise NoSuchTask(f"no callback {task_id!r} (see `acdkit callbacks list`)")
    if status != "ok":
        raise _not_replayable(task_id, str(status).partition(":")[2])
    return moved


def _not_replayable(task_id: str, state: str) -> Refused:
    return Refused(f"callback {task_id} is {state}: only a failed or expired callback can be "
                   "replayed (cancel it first if it is waiting)")


async def purge_callbacks(store: CallbackStore, older_than: float, now: float) -> list[str]:
    """Delete the ended callbacks whose last change is before ``older_than`` (epoch seconds)
    with their attempt records; audit ``purged`` for each; return their ids."""
    if older_than > now:
        raise InvalidInput("purge: the cut-off is in the future")
    purged: list[str] = []
    for task in await list_callbacks(store, states=TERMINAL_STATES):
        if await last_change(store, task) >= older_than:
            continue
        await store.delete_attempts(task.id)
        await store.forget_callback(task)
        pipe = store.redis.pipeline(transaction=True)
        pipe.delete(store.keys.task(task.id))
        pipe.zrem(store.keys.tasks, task.id)
        await pipe.execute()
        await store.pool.audit.append(task.id, "purged", now=now, state=task.state.value)
        purged.append(task.id)
    return purged


async def last_change(store: CallbackStore, task: Task) -> float:
    """When ``task`` last changed: its newest audit entry, else its creation."""
    newest = await store.pool.audit.latest(task.id)
    return newest[0].ts if newest else task.created_at

