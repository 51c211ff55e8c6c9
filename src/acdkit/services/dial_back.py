"""The dial-back runner: one attempt of one callback or outbound task, agent first.

The ``dial_back`` job (jobs/callbacks.py) runs it in an RQ worker; dialplan mode
(ami/dialback.py, agi/) runs the same runner. The protocol with ``serve`` is in
store/callbacks.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from acdkit.config import Settings
from acdkit.core.agents import AgentEvent, AgentState
from acdkit.core.callbacks import (
    Decision,
    DialOutcome,
    Next,
    RetryPolicy,
    after_attempt,
)
from acdkit.core.errors import ClaimLost, InvalidTransition, NoSuchAgent
from acdkit.core.numbers import NumberPolicy, check_dialable, next_calling_time
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.policies import number_policy, outbound_retry, retry_policy
from acdkit.ports import Clock, SystemClock
from acdkit.services.callbacks import DIALED_BACK
from acdkit.services.settlement import settle
from acdkit.store.callbacks import Attempt, CallbackStore, agent_leg
from acdkit.store.dnc import on_dnc
from acdkit.store.outbound import retry_rules
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)


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


def dial_back_of(store: CallbackStore, settings: Settings, clock: Clock | None = None) -> DialBack:
    """The ``DialBack`` runner configured from ``settings``."""
    return DialBack(store, retry_policy(settings), number_policy(settings),
                    wait_timeout=2 * settings.agents.ring_timeout + 30,
                    max_misses=settings.agents.max_misses, clock=clock or SystemClock(),
                    outbound_retry=lambda task: outbound_retry(settings, task.source))
