"""Outbound work in the pool: follow-ups (one pending per number), imported rows (one task
per stable row key) and the business rules applied as they enter.

Keys (next to store/keys.py, same hash tag)::

    acdkit:{pool}:fu:number:<e164>   string  the pending follow-up task id of a number
    acdkit:{pool}:rules:<task id>    hash    the task's values as its source gave them
                                             (``base``: JSON) and the rules that fired
    acdkit:{pool}:dnc                set     the do-not-call list (store/dnc.py)

A follow-up is an ``OUTBOUND`` task for a number that called and was not served (a missed
call, an abandoned queue call, a failed callback, an agent's request). ``add_follow_up`` keeps
one pending per number; ``drop_follow_ups`` cancels it when the customer calls in or is
called back. Rules (``PriorityRules.business``, core/rules.py) run on every task added here
and again before each retry (``reevaluate``), from the stored base values.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import cast

from acdkit.core.errors import (
    ClaimLost,
    InvalidInput,
    InvalidTransition,
    NoSuchTask,
    NumberRejected,
)
from acdkit.core.numbers import NumberPolicy, normalize
from acdkit.core.rules import Evaluation, evaluate
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.store.connection import guarded
from acdkit.store.dnc import dnc_key
from acdkit.store.keys import check_id, check_number
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)

PENDING = (TaskState.SCHEDULED, TaskState.QUEUED)  # a follow-up nobody works on yet

# KEYS: the number's follow-up pointer, the do-not-call set. ARGV: new task id, number,
# key base. Returns 'ok' (the pointer now names the new id), 'dnc' or 'pending:<id>'.
_CLAIM = """
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return 'dnc' end
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  local st = redis.call('HGET', ARGV[3] .. 'task:' .. cur, 'state')
  if st == 'scheduled' or st == 'queued' or st == 'reserved' then
    return 'pending:' .. cur
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 'ok'
"""
_UNCLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def follow_up_key(pool: Pool, number: str) -> str:
    return f"{pool.keys.base}fu:number:{check_number(number)}"


def rules_key(pool: Pool, task_id: str) -> str:
    return f"{pool.keys.base}rules:{check_id(task_id, 'task id')}"


def _base(task: Task) -> str:
    return json.dumps({"priority": task.priority, "skill": task.skill,
                       "min_level": task.min_level, "required": dict(task.required)},
                      sort_keys=True)


def with_base(task: Task, raw: str) -> Task:
    """``task`` with the values its source gave it (``raw``: the stored ``base`` JSON)."""
    try:
        base = json.loads(raw)
        return replace(task, priority=int(base["priority"]), skill=str(base["skill"]),
                       min_level=int(base["min_level"]),
                       required=MappingProxyType(dict(base["required"])))
    except (ValueError, KeyError, TypeError) as err:
        raise InvalidInput(f"task {task.id!r}: stored rule base is malformed ({err})") from None


def judge(pool: Pool, task: Task, now: float) -> Evaluation:
    """The business rules of the pool on ``task`` (source values) at ``now``."""
    return evaluate(task, pool.rules.business, now)


@guarded
async def record_rules(pool: Pool, items: Sequence[tuple[Task, Evaluation]], now: float) -> None:
    """Keep each task's source values and the rules that fired (for retries and explain)."""
    if not items:
        return
    pipe = pool.redis.pipeline(transaction=False)
    for source_task, result in items:
        pipe.hset(rules_key(pool, source_task.id), mapping={
            "base": _base(source_task), "fired": ",".join(result.fired), "at": repr(now)})
    await pipe.execute()


@guarded
async def admit(pool: Pool, task: Task, now: float) -> Evaluation:
    """Run the rules on new ``task`` and add it unless a rule dropped it. Returns the
    evaluation (``.task`` as stored). Raises ``InvalidInput`` when the id exists."""
    result = judge(pool, task, now)
    if result.dropped:
        log.info("task %s dropped by rule %s", task.id, result.dropped_by)
        return result
    await pool.add_task(result.task, now)
    if result.fired:
        await record_rules(pool, [(task, result)], now)
        await pool.audit.append(task.id, "rules", now=now, fired=",".join(result.fired),
                                priority=str(result.task.priority))
    return result


@guarded
async def stored_rules(pool: Pool, task_id: str) -> dict[str, str]:
    """What ``admit``/``reevaluate`` recorded for ``task_id`` (empty when no rules ran)."""
    return cast(dict[str, str], await pool.redis.hgetall(rules_key(pool, task_id)))


async def reevaluate(pool: Pool, task: Task, now: float) -> Evaluation:
    """The rules on ``task`` again at ``now`` (for a retry), from its stored base; write the
    new priority and restrictions (``update_task``) unless a rule now drops it."""
    raw = (await stored_rules(pool, task.id)).get("base")
    source = with_base(task, raw) if raw else task
    result = judge(pool, source, now)
    if result.dropped:
        return result
    new = result.task
    if (new.priority, new.skill, new.min_level, dict(new.required)) != (
            task.priority, task.skill, task.min_level, dict(task.required)):
        await pool.update_task(task.id, now, priority=new.priority, skill=new.skill,
                               min_level=new.min_level, required=new.required)
    if raw or result.fired:
        await record_rules(pool, [(source, result)], now)
    return result


async def retry_rules(pool: Pool, task_id: str, now: float) -> Evaluation | None:
    """Before a retry of outbound ``task_id``: the rules again (attempts and age have
    changed); a task a rule now drops is cancelled. None when the task is gone or ended."""
    task = await pool.get_task(task_id)
    if task is None or task.terminal:
        return None
    result = await reevaluate(pool, task, now)
    if result.dropped:
        with contextlib.suppress(InvalidTransition, ClaimLost):
            ended = await pool.move_task(task_id, TaskEvent.CANCEL, now,
                                         outcome=f"dropped by rule {result.dropped_by}")
            await forget_follow_up(pool, ended)
    return result


# -- follow-ups -------------------------------------------------------------------------------


@guarded
async def add_follow_up(pool: Pool, *, number: str, skill: str, reason: str, source: str,
                        now: float, attributes: Mapping[str, str] | None = None,
                        policy: NumberPolicy | None = None, task_id: str | None = None,
                        name: str = "", priority: int = 0,
                        due_at: float | None = None) -> Task | None:
    """Create one ``OUTBOUND`` follow-up task for ``number`` (queued at ``now`` in ``skill``).

    ``reason`` and ``source`` are kept (``attributes['reason']``, ``Task.source``). Returns
    the task as stored, or None when a follow-up for the number is already pending (queued,
    scheduled or being dialed; one in progress does not count: its agent may ask for the
    next), the number is on the do-not-call list (Redis, or the policy's), or a business
    rule dropped it. ``due_at`` (later than ``now``) schedules it instead of queuing it.
    ``number`` must be E.164 unless ``policy`` is given (then it is normalised).
    ``task_id`` fixes the id (a retried caller adds it once).
    Raises ``NumberRejected`` for a number that cannot be dialed (``do_not_call`` excepted),
    ``InvalidInput`` for a bad skill or id.
    """
    try:
        e164 = normalize(number, policy) if policy is not None else check_number(number)
    except NumberRejected as exc:
        if exc.reason == "do_not_call":
            return None
        raise
    except InvalidInput:
        raise NumberRejected(number, "malformed", "not E.164") from None
    due = due_at if due_at is not None and due_at > now else None
    task = Task(id=task_id or f"fu-{uuid.uuid4().hex[:16]}", kind=TaskKind.OUTBOUND,
                skill=skill, created_at=now, enqueued_at=due or now, number=e164, name=name,
                source=source, priority=priority, due_at=due,
                state=TaskState.QUEUED if due is None else TaskState.SCHEDULED,
                attributes=MappingProxyType({**(attributes or {}), "reason": reason}))
    pool.keys.task(task.id)
    pool.keys.queue(skill)
    pointer = follow_up_key(pool, e164)
    status = await pool.redis.eval(_CLAIM, 2, pointer, dnc_key(pool), task.id, e164,
                                   pool.keys.base)
    if status != "ok":
        log.info("follow-up for %s not added: %s", e164, status)
        return None
    try:
        result = await admit(pool, task, now)
    except InvalidInput:
        stored = await pool.get_task(task.id)
        return stored if stored is not None and stored.state in PENDING else None
    except BaseException:
        await pool.redis.eval(_UNCLAIM, 1, pointer, task.id)
        raise
    if result.dropped:
        await pool.redis.eval(_UNCLAIM, 1, pointer, task.id)
        return None
    await pool.audit.append(task.id, "follow_up", now=now, number=e164, reason=reason,
                            source=source)
    return result.task


@guarded
async def pending_follow_up(pool: Pool, number: str) -> Task | None:
    """The follow-up of ``number`` that has not ended, or None."""
    task_id = cast(str | None, await pool.redis.get(follow_up_key(pool, number)))
    task = await pool.get_task(task_id) if task_id else None
    return task if task is not None and not task.terminal else None


@guarded
async def drop_follow_ups(pool: Pool, number: str, now: float, why: str) -> int:
    """Cancel the pending follow-up of ``number`` (the customer called in or was called
    back); return how many were cancelled (0 or 1). One an agent is already dialing is left
    to finish. A number that is not E.164 has none: 0."""
    try:
        pointer = follow_up_key(pool, number)
    except InvalidInput:
        return 0
    task_id = cast(str | None, await pool.redis.get(pointer))
    task = await pool.get_task(task_id) if task_id else None
    if task is None or task.state not in PENDING:
        if task_id and (task is None or task.terminal):
            await pool.redis.eval(_UNCLAIM, 1, pointer, task_id)
        return 0
    try:
        await pool.move_task(task.id, TaskEvent.CANCEL, now, outcome=f"dropped: {why}")
    except (InvalidTransition, ClaimLost, NoSuchTask) as exc:
        log.info("follow-up %s of %s not dropped: %s", task.id, number, exc)
        return 0
    await pool.redis.eval(_UNCLAIM, 1, pointer, task.id)
    log.info("follow-up %s of %s dropped: %s", task.id, number, why)
    return 1


async def forget_follow_up(pool: Pool, task: Task) -> None:
    """Free the number's follow-up pointer once ``task`` ended (a new one may come)."""
    if task.kind is TaskKind.OUTBOUND and task.number:
        await pool.redis.eval(_UNCLAIM, 1, follow_up_key(pool, task.number), task.id)


# -- live callers: a call in drops the follow-up, a hang-up in the queue makes one ------------


async def on_call_in(pool: Pool, policy: NumberPolicy, caller: str, now: float) -> int:
    """The customer ``caller`` (the calling line as received) called in: drop its pending
    follow-up. An anonymous or unusable caller number has none: 0."""
    try:
        return await drop_follow_ups(pool, normalize(caller, policy), now, "called in")
    except NumberRejected:
        return 0


async def on_missed_call(pool: Pool, policy: NumberPolicy, task: Task, now: float, *,
                         after: float = 0.0, skill: str = "") -> Task | None:
    """``task`` (a live call) ended: when the caller hung up while queued (ABANDONED) after
    waiting ``after`` seconds or more, add its follow-up (source ``missed-call``, in
    ``skill`` or the call's). None when none was added (see ``add_follow_up``)."""
    if task.kind is not TaskKind.CALL or task.state is not TaskState.ABANDONED or \
            now - task.enqueued_at < after or not task.number:
        return None
    try:
        return await add_follow_up(
            pool, number=task.number, skill=skill or task.skill, reason="abandoned",
            source="missed-call", now=now, policy=policy,
            attributes={"call": task.id, "waited": str(round(now - task.enqueued_at))})
    except NumberRejected as exc:
        log.info("missed call %s from %r: no follow-up (%s)", task.id, task.number, exc.reason)
        return None
