"""Booking callbacks: one pending callback per number and queue, rate limits, the index.

``Booking`` is the base of ``store.callbacks.CallbackStore`` (use that class). A booking for
a number that already has a pending callback in the same queue updates it (the new time, the
better place) instead of adding a second one; more pending callbacks per number than
``NumberPolicy.max_pending_per_number`` are refused (``too_many_pending``). Requests are
counted per calling number and per number to call back within ``policy.caller_window``
(``max_requests_per_caller`` each), dial attempts per number within ``policy.number_window``
(counted by ``finish_attempt``); over a limit, ``NumberRejected`` carries the core's reason
(``rate_limited_caller``, ``rate_limited_number``), which ``numbers.prompt_for`` speaks.
A caller who withholds its number (``anonymous``, empty, ``unknown``, ``restricted``, any
caller ID that is not digits) is not free of the limit: all such callers on one trunk or
DID share one subject (``caller_subject``; docs/security-policy.md).

Keys (``store/keys.py``): ``cb:number:<e164>`` the pending callback ids of a number,
``rate:request:<e164>``, ``rate:caller:<who>``, ``rate:dial:<e164>`` counters (they expire
with their window), ``lock:book:<e164>`` one booking per number at a time.

With ``redis.min_replicas_ack``, ``book_callback`` returns only once replicas hold the booking
(``store/durability.py``); else ``NotDurable`` (and a new callback is cancelled).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import redis.asyncio as aioredis

from acdkit.core.agents import AgentEvent
from acdkit.core.errors import AcdError, ClaimLost, InvalidInput, NotDurable, NumberRejected
from acdkit.core.numbers import NumberPolicy, check_dialable
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.store.codec import encode_float
from acdkit.store.connection import guarded
from acdkit.store.keys import Keys
from acdkit.store.pool import Pool

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_SAFE = re.compile(r"^(\+[1-9][0-9]{1,14}|[A-Za-z0-9._:-]{1,64})$")
_IDENTIFIED = re.compile(r"^\+?[0-9]{3,20}$")  # a caller ID that names a line
_CHANNEL = re.compile(r"^(?:[A-Za-z0-9]+/)?(.+?)(?:-[0-9a-f]{8}(?:;[0-9]+)?)?$")
_BOOK_LOCK_TTL = 10.0
_BOOK_LOCK_TRIES = 40  # x 50 ms: how long a booking waits for another one of the same number
HELD = (TaskState.RESERVED, TaskState.ACTIVE)


@dataclass(frozen=True)
class BookResult:
    task: Task  # the callback as stored: the new one, or the pending one it updated
    updated: bool  # True: a pending callback for the number was updated, none was added


def subject(who: str) -> str:
    """``who`` (a calling number, possibly not E.164) as a key-safe rate-limit subject."""
    if _SAFE.fullmatch(who):
        return who
    return "h" + hashlib.sha256(who.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def line_of(channel: str) -> str:
    """The endpoint (trunk or DID line) of a channel name: ``PJSIP/carrier-0000002a`` →
    ``carrier``; a bare endpoint name is returned as is."""
    found = _CHANNEL.fullmatch(channel.strip())
    return found.group(1) if found else ""


def caller_subject(caller_number: str, line: str = "") -> str:
    """Whom a booking counts against: the calling number when the caller ID is one, else
    ``anonymous:<line>``, shared by every withheld or non-digit caller ID that came in on
    that trunk or DID (``line``: the calling channel's name or endpoint)."""
    number = caller_number.strip()
    if _IDENTIFIED.fullmatch(number):
        return number
    return f"anonymous:{line_of(line) or '-'}"


class Booking:
    """Locks, rate counters and the booking side of callbacks in one pool."""

    def __init__(self, pool: Pool, *, lock_ttl: float = 30.0) -> None:
        if lock_ttl <= 0:
            raise InvalidInput("lock_ttl must be above 0")
        self.pool = pool
        self.redis: aioredis.Redis = pool.redis
        self.keys: Keys = pool.keys
        self.lock_ttl = lock_ttl
        self._unlock = self.redis.register_script(_UNLOCK)
        self._renew = self.redis.register_script(_RENEW)

    # -- locks: SET NX PX with a random token, released or renewed only by their holder ------

    async def _lock(self, key: str, ttl: float) -> str | None:
        token = secrets.token_hex(16)
        done = await self.redis.set(key, token, nx=True, px=max(1, int(ttl * 1000)))
        return token if done else None

    async def _release(self, key: str, token: str) -> bool:
        return bool(await self._unlock(keys=[key], args=[token]))

    async def _extend(self, key: str, token: str, ttl: float) -> bool:
        return bool(await self._renew(keys=[key], args=[token, max(1, int(ttl * 1000))]))

    # -- counters ----------------------------------------------------------------------------

    async def _count(self, kind: str, who: str, window: float) -> int:
        """Count one more event of ``who`` in its window; return the count including it."""
        key = self.keys.rate(kind, subject(who))
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, max(1, int(window)), nx=True)
        count, _ = await pipe.execute()
        return int(count)

    @guarded
    async def dial_count(self, number: str) -> tuple[int, float]:
        """Dial attempts to ``number`` in its current window, and the seconds left of it."""
        key = self.keys.rate("dial", number)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        count, ttl = await pipe.execute()
        return int(count or 0), max(0.0, int(ttl) / 1000.0)

    # -- the index of pending callbacks ------------------------------------------------------

    @guarded
    async def pending_for(self, number: str) -> list[Task]:
        """The callbacks for ``number`` that have not ended, by place in line; ids of ended or
        deleted tasks are dropped from the index on the way."""
        key = self.keys.callbacks_of(number)
        ids = sorted(cast(set[str], await self.redis.smembers(key)))
        pipe = self.redis.pipeline(transaction=False)
        for task_id in ids:
            pipe.exists(self.keys.task(task_id))
        live = [task_id for task_id, ok in zip(ids, await pipe.execute(), strict=True) if ok]
        tasks = [t for t in [await self.pool.get_task(i) for i in live] if t is not None]
        stale = set(ids) - {t.id for t in tasks if not t.terminal}
        if stale:
            await self.redis.srem(key, *stale)
        return sorted((t for t in tasks if not t.terminal), key=lambda t: (t.enqueued_at, t.id))

    @guarded
    async def forget_callback(self, task: Task) -> None:
        """Take ``task`` out of its number's pending index (call it when it ends)."""
        if task.number:
            await self.redis.srem(self.keys.callbacks_of(task.number), task.id)

    @guarded
    async def remember_callback(self, task: Task) -> None:
        """Put ``task`` into its number's pending index (a replayed callback)."""
        await self.redis.sadd(self.keys.callbacks_of(task.number), task.id)

    # -- booking -----------------------------------------------------------------------------

    @guarded
    async def book_callback(self, task: Task, *, policy: NumberPolicy, caller_number: str,
                            now: float, line: str = "") -> BookResult:
        """Store callback ``task`` (QUEUED, or SCHEDULED with its due time) booked at ``now``
        by ``caller_number`` (the caller ID, as received; may be empty or ``anonymous``) on
        ``line`` (the calling channel, whose endpoint is the trunk or DID), or update the
        pending callback of the same number and queue instead.

        ``task.number`` must be E.164 from ``numbers.normalize``; digits are not validated
        again. Returns a ``BookResult``. Raises ``NumberRejected`` (``too_many_pending``,
        ``rate_limited_caller``, ``rate_limited_number``, or a policy reason), ``InvalidInput``
        for a task that is not a new callback, ``ClaimLost`` when another booking of the same
        number holds its lock too long.
        """
        if task.kind is not TaskKind.CALLBACK or task.state not in (TaskState.QUEUED,
                                                                    TaskState.SCHEDULED):
            raise InvalidInput(f"task {task.id!r} is not a new callback (queued or scheduled)")
        lock = self.keys.book_lock(task.number)
        for _ in range(_BOOK_LOCK_TRIES):
            token = await self._lock(lock, _BOOK_LOCK_TTL)
            if token is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise ClaimLost(f"another booking for {task.number} is in progress")
        try:
            result = await self._book(task, policy, caller_number, now, line)
            await self._confirm(result, now)
            return result
        finally:
            await self._release(lock, token)

    async def _confirm(self, result: BookResult, now: float) -> None:
        """Return once replicas hold the booking (``redis.min_replicas_ack``). Else a new
        callback is cancelled (outcome ``not_durable``) before ``NotDurable`` goes up, so the
        caller who is told it could not be booked is not called back either; an update of a
        pending callback stays as the primary has it (docs/redis-ha.md)."""
        try:
            await self.pool.durability.confirm()
        except NotDurable:
            if not result.updated:
                with contextlib.suppress(AcdError):  # Redis gone: the booking goes with it
                    await self._withdraw(result.task.id, now)
            raise

    async def _withdraw(self, task_id: str, now: float) -> None:
        """Cancel a callback that was just booked (a dispatcher may have reserved an agent
        for it meanwhile: that agent's reservation ends too)."""
        cancelled = await self.pool.move_task(task_id, TaskEvent.CANCEL, now,
                                              outcome="not_durable")
        await self.forget_callback(cancelled)
        if cancelled.agent_id:
            await self.pool.move_agent(cancelled.agent_id, AgentEvent.END, now,
                                       expect_task=task_id)

    async def _book(self, task: Task, policy: NumberPolicy, caller: str, now: float,
                    line: str) -> BookResult:
        callers = await self._count("caller", caller_subject(caller, line), policy.caller_window)
        requests = await self._count("request", task.number, policy.caller_window)
        if requests > policy.max_requests_per_caller:
            raise NumberRejected(task.number, "rate_limited_number", "too many requests")
        dialed, _ = await self.dial_count(task.number)
        pending = await self.pending_for(task.number)
        same = next((t for t in pending if t.skill == task.skill), None)
        verdict = check_dialable(
            task.number, policy, pending_for_number=0 if same else len(pending),
            recent_attempts_number=dialed, recent_requests_caller=max(0, callers - 1),
            now=datetime.fromtimestamp(now, UTC))
        if not verdict.allowed and not verdict.postponed:  # calling hours apply at dial time
            raise NumberRejected(task.number, verdict.reason, verdict.message)
        due = encode_float(task.due_at) if task.due_at is not None else ""
        if same is not None:
            merged = await self._merge(same, task, now)
            await self.pool.audit.append(same.id, "updated", now=now, request=task.id,
                                         number=task.number, caller=caller, due=due)
            return BookResult(merged, True)
        await self.redis.sadd(self.keys.callbacks_of(task.number), task.id)  # index first
        try:
            await self.pool.add_task(task, now)
        except InvalidInput:
            await self.redis.srem(self.keys.callbacks_of(task.number), task.id)
            raise
        await self.pool.audit.append(task.id, "booked", now=now, number=task.number,
                                     caller=caller, skill=task.skill, due=due)
        return BookResult(task, False)

    async def _merge(self, old: Task, new: Task, now: float) -> Task:
        """``old`` with the time ``new`` asks for and the better (earlier) of both places."""
        if old.state in HELD:
            return old  # an agent is on it right now: nothing to move
        pool = self.pool
        place = min(old.enqueued_at, new.enqueued_at)
        if new.state is TaskState.SCHEDULED:
            if old.state is TaskState.QUEUED:
                await pool.move_task(old.id, TaskEvent.RESCHEDULE, now, due_at=new.due_at)
            return await pool.update_task(old.id, now, enqueued_at=place, due_at=new.due_at)
        merged = await pool.update_task(old.id, now, enqueued_at=place)
        if merged.state is TaskState.SCHEDULED:
            merged = await pool.move_task(old.id, TaskEvent.DUE, now)
        return merged
