"""Callback maintenance: due callbacks queued, overdue ones expired, and callbacks a dead
worker left handed to a new ``dial_back`` job. ``acdkit worker`` runs both in rounds; the
RQ jobs ``promote_due`` and ``recover`` (jobs/callbacks.py) run one each."""

from __future__ import annotations

from typing import cast

from acdkit.core.agents import AgentState
from acdkit.core.callbacks import DialOutcome, RetryPolicy, check_expired
from acdkit.core.tasks import TaskKind, TaskState
from acdkit.jobqueue import Recovery, Requeuing
from acdkit.services.callbacks import DIALED_BACK, enqueue_dial_back
from acdkit.services.settlement import settle
from acdkit.store.callbacks import CallbackStore

_AGENT_HOLDING = (AgentState.RESERVED, AgentState.ON_CALL)


async def promote_due_callbacks(store: CallbackStore, retry: RetryPolicy, now: float,
                                limit: int = 1_000) -> list[str]:
    """Expire the waiting callbacks past their deadline (a follow-up task when the policy
    says so): the due ones, and the queued ones that waited longer than ``expire_after``
    (an instant callback's place is never after its booking); then queue every due task.
    Returns the ids queued."""
    redis, keys = store.redis, store.keys
    ids = cast(list[str], await redis.zrangebyscore(keys.due, "-inf", repr(now), start=0,
                                                    num=limit))
    if retry.expire_after is not None:
        for skill in sorted(cast(set[str], await redis.smembers(keys.skills))):
            ids += cast(list[str], await redis.zrangebyscore(
                keys.queue_age(skill), "-inf", repr(now - retry.expire_after), start=0,
                num=limit))
    for task_id in ids:
        task = await store.pool.get_task(task_id)
        if task is None or task.kind is not TaskKind.CALLBACK:
            continue
        decision = check_expired(task, now, retry)
        if decision is not None:
            await settle(store, task, None, decision, now)
    return await store.pool.promote_due(now, limit)


async def recover_callbacks(store: CallbackStore, jobs: Requeuing) -> list[str]:
    """Re-enqueue ``dial_back`` for held callbacks nobody works on: the dial lock is free and
    the latest attempt is either decided (the next one was never asked for), or has an outcome
    nobody applied, or has none while serve holds no command for it. A job of a dead worker
    still ``started`` in RQ is replaced (``jobqueue.RqJobQueue.requeue``). Returns the job
    ids enqueued (none for a job still waiting or running)."""
    recovery = Recovery(jobs, stale_after=store.lock_ttl)
    agents = await store.pool.list_agents()
    held = [a.task_id for a in agents if a.state in _AGENT_HOLDING and a.task_id]
    live = {(c.get("task_id"), c.get("attempt")) for c in await store.queued_commands()}
    for task_id in held:
        task = await store.pool.get_task(task_id)
        if task is None or task.kind not in DIALED_BACK or \
                await store.dial_lock_held(task_id):
            continue
        last = await store.last_attempt(task_id)
        if last is not None and last.outcome is DialOutcome.ANSWERED:
            continue  # connected: serve finishes the task when the call ends
        if last is None or last.decided:
            if task.state is not TaskState.RESERVED:
                continue
        elif last.outcome is None and (task_id, last.n) in live:
            continue  # serve has not taken the command yet
        await enqueue_dial_back(store, recovery, task_id)
    return recovery.enqueued
