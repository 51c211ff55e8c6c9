"""RQ jobs: thin functions that take string ids, load state, call the core, write the outcome.

Enqueued by dotted path with the JSON serializer (``jobqueue.RqJobQueue``)::

    acdkit.jobs.dial_back(task_id)   queue "callbacks", job id "dial-<task_id>-<n>"
    acdkit.jobs.promote_due()        queue the due callbacks, expire the overdue ones
    acdkit.jobs.recover()            re-enqueue dial_back for callbacks a dead worker left

Each loads the settings (``config.load_settings``) and runs ``asyncio.run`` on its own
connection. The dial-back protocol with ``serve`` is in ``store/callbacks.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar, cast

from acdkit.config import Settings, load_settings
from acdkit.core.agents import AgentEvent, AgentState
from acdkit.core.callbacks import (
    Decision,
    DialOutcome,
    Next,
    RetryPolicy,
    after_attempt,
    check_expired,
)
from acdkit.core.errors import ClaimLost, InvalidInput, InvalidTransition, NoSuchAgent
from acdkit.core.numbers import NumberPolicy, check_dialable, next_calling_time
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.policies import number_policy, outbound_retry, retry_policy
from acdkit.ports import Clock, JobQueue, SystemClock
from acdkit.store.callbacks import Attempt, CallbackStore, agent_leg
from acdkit.store.dnc import on_dnc
from acdkit.store.outbound import add_follow_up, forget_follow_up, retry_rules
from acdkit.store.pool import Pool
from acdkit.store.primary import primary_of

if TYPE_CHECKING:
    from acdkit.jobqueue import Requeuing

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE = "callbacks"
DIAL_BACK = "acdkit.jobs.dial_back"
_AGENT_HOLDING = (AgentState.RESERVED, AgentState.ON_CALL)
DIALED_BACK = frozenset({TaskKind.CALLBACK, TaskKind.OUTBOUND})  # agent first, by this job


def job_id(task_id: str, n: int) -> str:
    """The RQ job id of the ``dial_back`` that works on attempt ``n`` of ``task_id``."""
    return f"dial-{task_id}-{n}"


def callback_store(pool: Pool, settings: Settings) -> CallbackStore:
    """The callback store of ``pool`` configured from ``settings``."""
    return CallbackStore(pool, lock_ttl=settings.callbacks.lock_ttl,
                         number_window=number_policy(settings).number_window)


async def enqueue_dial_back(store: CallbackStore, jobs: JobQueue, task_id: str) -> str:
    """Enqueue the ``dial_back`` job for ``task_id``'s next attempt; return its job id (a job
    already queued or running for that attempt is not queued twice)."""
    n = await store.next_attempt_number(task_id)
    return jobs.enqueue(QUEUE, DIAL_BACK, task_id, job_id=job_id(task_id, n))


@dataclass
class DialBack:
    """One attempt of one callback, agent first (see store/callbacks.py)."""

    store: CallbackStore
    retry: RetryPolicy
    numbers: NumberPolicy
    wait_timeout: float  # seconds to wait for serve's outcome
    max_misses: int = 3
    clock: Clock = field(default_factory=SystemClock)
    # The retry policy of an outbound task (per source); callbacks use ``retry``.
    outbound_retry: Callable[[Task], RetryPolicy] | None = None

    @property
    def pool(self) -> Pool:
        return self.store.pool

    def policy_for(self, task: Task) -> RetryPolicy:
        if task.kind is TaskKind.OUTBOUND and self.outbound_retry is not None:
            return self.outbound_retry(task)
        return self.retry

    async def run(self, task_id: str) -> str:
        """Run the next attempt of callback ``task_id`` (or finish one a dead worker left).
        Returns what happened: an outcome value, or ``no_task``, ``not_reserved``, ``locked``,
        ``postponed``, ``refused``, ``expired``, ``lost_lock``."""
        task = await self.pool.get_task(task_id)
        if task is None or task.kind not in DIALED_BACK:
            log.warning("dial_back %s: no such callback", task_id)
            return "no_task"
        token = await self.store.acquire_dial_lock(task_id)
        if token is None:
            log.info("dial_back %s: another attempt is in flight", task_id)
            return "locked"
        try:
            return await self._locked(task_id, token)
        finally:
            await self.store.release_dial_lock(task_id, token)

    async def _locked(self, task_id: str, token: str) -> str:
        task = await self.pool.get_task(task_id)
        attempt = await self.store.last_attempt(task_id)
        if task is None:
            return "no_task"
        if attempt is None or attempt.decided:
            if task.state is not TaskState.RESERVED or not task.agent_id:
                log.info("dial_back %s: %s, not reserved: nothing to do", task_id, task.state)
                return "not_reserved"
            stopped = await self._gate(task)
            if stopped:
                return stopped
            attempt = await self._open(task, attempt.n + 1 if attempt else 1)
        elif attempt.outcome is None:
            log.info("dial_back %s: resuming attempt %d (no outcome yet)", task_id, attempt.n)
        outcome = attempt.outcome or await self._wait(attempt, token)
        if outcome is None:
            return "lost_lock"
        decided = await self._decide(attempt, outcome)
        await self.store.mark_decided(task_id, attempt.n, decided)
        return outcome.value

    async def _open(self, task: Task, n: int) -> Attempt:
        agent = task.agent_id or ""
        command = {"op": "dial_back", "task_id": task.id, "attempt": n, "agent_id": agent,
                   "number": task.number, "agent_leg": agent_leg(task.id, n),
                   "customer_leg": agent_leg(task.id, n, "c")}
        if await self.store.open_attempt(task.id, n, agent, self.clock.now(),
                                         number=task.number, base_attempts=task.attempts,
                                         command=command):
            log.info("dial_back %s: attempt %d requested (agent %s)", task.id, n, agent)
        attempt = await self.store.get_attempt(task.id, n)
        assert attempt is not None  # it was there, or we wrote it
        return attempt

    async def _wait(self, attempt: Attempt, token: str) -> DialOutcome | None:
        """serve's outcome, renewing the lock meanwhile; ``failed`` when none comes in time,
        None when the lock was lost (another job took over)."""
        task_id, n = attempt.task_id, attempt.n
        deadline = time.monotonic() + self.wait_timeout
        step = max(0.5, self.store.lock_ttl / 3)
        while (left := deadline - time.monotonic()) > 0:
            outcome = await self.store.wait_attempt(task_id, n, min(left, step))
            if outcome is not None:
                return outcome
            if not await self.store.renew_dial_lock(task_id, token):
                log.warning("dial_back %s: lost the dial lock during attempt %d", task_id, n)
                return None
        log.warning("dial_back %s: no outcome for attempt %d in %.0f s: failed", task_id, n,
                    self.wait_timeout)
        return await self.store.finish_attempt(task_id, n, DialOutcome.FAILED,
                                               self.clock.now(), detail="timeout", dialed=False)

    async def _gate(self, task: Task) -> str | None:
        """Stop before dialing when the callback expired, the number is outside calling
        hours or over its dial rate (postponed), or no longer allowed (refused)."""
        now = self.clock.now()
        deadline = self.policy_for(task).deadline(task)
        if deadline is not None and now >= deadline:
            await self._apply(task, task.agent_id, self._ended(Next.EXPIRED, task, "expired"))
            return "expired"
        dialed, window_left = await self.store.dial_count(task.number)
        verdict = check_dialable(task.number, self.numbers, pending_for_number=0,
                                 recent_attempts_number=dialed, recent_requests_caller=0,
                                 now=datetime.fromtimestamp(now, UTC),
                                 on_dnc_list=await on_dnc(self.pool, task.number))
        if verdict.allowed:
            return None
        if verdict.not_before is not None or verdict.reason == "rate_limited_number":
            due = verdict.not_before.timestamp() if verdict.not_before else now + window_left
            log.info("dial_back %s: %s, postponed to %.0f", task.id, verdict.reason, due)
            await self._apply(task, task.agent_id, Decision(
                Next.RETRY, task.attempts, due_at=max(due, now + 1),
                outcome=f"postponed: {verdict.reason}"))
            return "postponed"
        log.warning("dial_back %s: number refused (%s)", task.id, verdict.reason)
        await self._apply(task, task.agent_id,
                          self._ended(Next.FAILED, task, f"refused: {verdict.reason}"))
        return "refused"

    def _ended(self, next_: Next, task: Task, outcome: str) -> Decision:
        return Decision(next_, task.attempts, follow_up=self.policy_for(task).follow_up,
                        outcome=outcome)

    async def _decide(self, attempt: Attempt, outcome: DialOutcome) -> str:
        """Apply what follows ``outcome``; return the ``Next`` value recorded on the attempt."""
        task = await self.pool.get_task(attempt.task_id)
        if task is None:
            return "gone"
        now = self.clock.now()
        decision = after_attempt(replace(task, attempts=attempt.base_attempts), outcome, now,
                                 self.policy_for(task))
        if decision.next is Next.RETRY and decision.due_at is not None:
            decision = self._in_calling_hours(task, decision)
        log.info("dial_back %s: attempt %d %s → %s", task.id, attempt.n, outcome.value,
                 decision.next.value)
        if decision.next is Next.COMPLETED:  # serve connects, completes and forgets it
            await self.pool.update_task(task.id, now, attempts=decision.attempts)
        elif decision.next is Next.REQUEUE:
            await self._requeue(task, attempt.agent_id, now)
        else:
            await self._apply(task, attempt.agent_id, decision)
            if decision.next is Next.RETRY and task.kind is TaskKind.OUTBOUND:
                await retry_rules(self.pool, task.id, now)
        return decision.next.value

    def _in_calling_hours(self, task: Task, decision: Decision) -> Decision:
        assert decision.due_at is not None
        due = next_calling_time(task.number, self.numbers,
                                datetime.fromtimestamp(decision.due_at, UTC)).timestamp()
        deadline = self.policy_for(task).deadline(task)
        if deadline is not None and due >= deadline:
            return replace(self._ended(Next.EXPIRED, task, "expired"),
                           attempts=decision.attempts,
                           outcome=f"expired after {decision.outcome}")
        return replace(decision, due_at=max(due, decision.due_at))

    async def _requeue(self, task: Task, agent_id: str, now: float) -> None:
        """The agent missed the offer: back in the pool with its place, no attempt counted.
        serve normally did it (agent NO_ANSWER); this is the same move, idempotent."""
        try:
            await self.pool.move_agent(agent_id, AgentEvent.NO_ANSWER, now, expect_task=task.id,
                                       max_misses=self.max_misses)
        except (ClaimLost, InvalidTransition, NoSuchAgent):
            current = await self.pool.get_task(task.id)
            if current and current.state is TaskState.RESERVED and current.agent_id == agent_id:
                await self.pool.release(task.id, AgentState.WRAP_UP, now,
                                        reason="agent_no_answer", missed=True,
                                        from_states=(TaskState.RESERVED,))

    async def _apply(self, task: Task, agent_id: str | None, decision: Decision) -> None:
        await settle(self.store, task, agent_id, decision, self.clock.now())


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


# -- maintenance: due callbacks, and callbacks a dead worker left ---------------------------------


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
    from acdkit.jobqueue import Recovery

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


# -- the RQ entry points --------------------------------------------------------------------------


async def with_store(settings: Settings, work: Callable[[CallbackStore], Awaitable[T]]) -> T:
    """Open the pool of ``settings``, run ``work(store)``, close it."""
    from acdkit.bootstrap import open_pool

    pool = await open_pool(settings)
    try:
        return await work(callback_store(pool, settings))
    finally:
        await pool.close()


def dial_back_of(store: CallbackStore, settings: Settings, clock: Clock | None = None) -> DialBack:
    """The ``DialBack`` runner configured from ``settings``."""
    return DialBack(store, retry_policy(settings), number_policy(settings),
                    wait_timeout=2 * settings.agents.ring_timeout + 30,
                    max_misses=settings.agents.max_misses, clock=clock or SystemClock(),
                    outbound_retry=lambda task: outbound_retry(settings, task.source))


def dial_back(task_id: str) -> str:
    """RQ job: one dial-back attempt of callback ``task_id`` (see ``DialBack.run``)."""
    settings = load_settings()
    return asyncio.run(with_store(settings, lambda s: dial_back_of(s, settings).run(task_id)))


def promote_due() -> int:
    """RQ job: queue the due callbacks (expiring the overdue); return how many."""
    settings = load_settings()
    retry = retry_policy(settings)
    queued = asyncio.run(with_store(
        settings, lambda s: promote_due_callbacks(s, retry, SystemClock().now())))
    return len(queued)


def recover() -> int:
    """RQ job: re-enqueue ``dial_back`` for callbacks a dead worker left; return how many."""
    from acdkit.jobqueue import RqJobQueue

    settings = load_settings()
    jobs = RqJobQueue(primary_of(settings.redis))
    try:
        return len(asyncio.run(with_store(settings, lambda s: recover_callbacks(s, jobs))))
    finally:
        jobs.close()


# -- voice requests (bodies in acdkit/voice_jobs.py) ----------------------------------------------


def transcribe(task_id: str) -> str:
    """RQ job (queue ``speech``): transcribe voice request ``task_id``, release its work order."""
    from acdkit.speech.asr import transcriber
    from acdkit.store.requests import RequestStore
    from acdkit.voice_jobs import run_transcription

    settings = load_settings()
    engine = transcriber(settings.requests.engine, settings.requests.whisper_model)
    return asyncio.run(with_store(settings, lambda s: run_transcription(
        RequestStore(s.pool, settings.requests), engine, task_id, SystemClock())))


def deliver_reply(task_id: str) -> str:
    """RQ job (queue ``requests``): one delivery call of voice request ``task_id``'s reply."""
    from acdkit.jobqueue import RqJobQueue
    from acdkit.messaging import messenger_for
    from acdkit.store.requests import RequestStore
    from acdkit.voice_jobs import Delivery

    settings = load_settings()
    jobs = RqJobQueue(primary_of(settings.redis))
    try:
        return asyncio.run(with_store(settings, lambda s: Delivery(
            RequestStore(s.pool, settings.requests), s, jobs, retry_policy(settings),
            number_policy(settings), wait_timeout=2 * settings.agents.ring_timeout + 120,
            messenger=messenger_for(settings)).run(task_id)))
    finally:
        jobs.close()
