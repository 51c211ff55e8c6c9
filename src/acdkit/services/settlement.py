"""What follows a callback attempt that ended it or put it off: the task moved, the agent
freed, the number's index cleaned, the follow-up task added. Idempotent, so the ``dial_back``
job, the maintenance round and a re-run after a dead worker may all apply it."""

from __future__ import annotations

import contextlib
import logging

from acdkit.core.agents import AgentEvent
from acdkit.core.callbacks import Decision
from acdkit.core.errors import ClaimLost, InvalidInput, InvalidTransition, NoSuchAgent
from acdkit.core.tasks import Task, TaskState
from acdkit.store.callbacks import CallbackStore
from acdkit.store.outbound import add_follow_up, forget_follow_up

log = logging.getLogger(__name__)


async def settle(store: CallbackStore, task: Task, agent_id: str | None, decision: Decision,
                 now: float) -> None:
    """Reschedule, fail or expire ``task`` (``decision``) after an attempt of ``agent_id``:
    set its customer attempts, move it, free the agent if it still holds it, drop an ended
    callback from its number's index and add its follow-up task. Idempotent: a move the task's
    state no longer takes is logged and skipped."""
    pool = store.pool
    await pool.update_task(task.id, now, attempts=decision.attempts)
    current = await pool.get_task(task.id)
    if current is None:
        return
    if current.state is TaskState.RESERVED and current.agent_id != agent_id:
        log.info("callback %s: taken by agent %s meanwhile", task.id, current.agent_id)
        return
    if not current.terminal:
        try:
            current = await pool.move_task(task.id, decision.event, now,
                                           due_at=decision.due_at, outcome=decision.outcome)
        except (InvalidTransition, ClaimLost) as err:
            log.info("callback %s: %s not applied: %s", task.id, decision.event.value, err)
    if current.terminal:
        await store.forget_callback(current)
        await forget_follow_up(pool, current)
        if decision.follow_up:
            await follow_up(store, current, now)
    if agent_id:
        # Freed already when a reschedule did it in the same step.
        with contextlib.suppress(ClaimLost, InvalidTransition, NoSuchAgent):
            await pool.move_agent(agent_id, AgentEvent.END, now, expect_task=task.id)


async def follow_up(store: CallbackStore, task: Task, now: float) -> None:
    """Add the outbound follow-up task of an ended callback (once: its id is fixed; none
    when the number has one pending or is on the do-not-call list)."""
    try:
        follow = await add_follow_up(
            store.pool, number=task.number, skill=task.skill, reason=task.outcome or "failed",
            source="callback-failed", now=now, attributes={"follow_up_of": task.id},
            task_id=f"{task.id}-fu", name=task.name)
    except InvalidInput as exc:
        log.warning("callback %s: no follow-up: %s", task.id, exc)
        return
    if follow is not None:
        await store.pool.audit.append(task.id, "follow_up", now=now, task=follow.id)
