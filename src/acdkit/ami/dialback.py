"""Dialplan-mode dial-back: ``acdkit agi`` calls customers back through AMI into ``Queue()``.

Which tasks: those of the dialplan-mode skills (``queue:<name>``, ``dialplan_vars``), booked by
the ``callback-offer`` route or added as follow-ups of abandoned callers. No acdkit agent has
such a skill, so the Stasis dispatcher never takes them; here a task is *held by its queue*
(``agent_id = ami:<queue>``, ``CallbackStore.hold_for_queue``) while it is dialed.

When: as many at once per queue as the queue has free members (``MemberBoard``, from AMI),
best first by the pool's order. Each attempt, under the dial lock of store/callbacks.py (never
two dials of one callback at once): the dialing policy (``jobs.DialBack`` gate: calling hours,
dial rate, do-not-call, expiry), the attempt recorded *before* the Originate is sent (its own
ChannelId), the Originate with a timeout, the outcome recorded with ``finish_attempt`` and
applied with the same retry policy as Stasis mode. Answered: the task is active until the
customer is connected to a member (``AgentConnect``) or leaves (``Hangup``): completed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from acdkit.agi.offer import dialplan_skill, queue_of_skill
from acdkit.ami.link import AmiLink
from acdkit.ami.members import MemberBoard
from acdkit.ami.originate import (
    DialPlan,
    originate_action,
    outcome_of_dial_status,
    outcome_of_reply,
)
from acdkit.core.callbacks import DialOutcome, Next
from acdkit.core.errors import AcdError, AmiUnavailable, InvalidTransition
from acdkit.core.tasks import Task, TaskEvent, TaskState
from acdkit.jobs import DialBack, promote_due_callbacks
from acdkit.store.callbacks import CallbackStore, agent_leg

log = logging.getLogger(__name__)
HOLDER_PREFIX = "ami:"
MAX_IN_QUEUE = 7_200.0  # seconds a dialled-back customer may wait in Queue() before we stop
IN_QUEUE = frozenset({"AgentConnect", "Hangup", "QueueCallerAbandon"})
AGENT_LEG = frozenset({"DialEnd", "Hangup"})
# An answered attempt: its channel id, the member (agent first) and the end of its call.
Answered = tuple[str, str | None, "asyncio.Future[Mapping[str, str]]"]


def holder_of(queue: str) -> str:
    return HOLDER_PREFIX + queue


@dataclass
class QueueDialBack:
    """The dial-back loop of dialplan mode (one per ``acdkit agi``)."""

    link: AmiLink
    board: MemberBoard
    runner: DialBack  # gate, retry policy and decisions shared with Stasis mode
    plan: DialPlan
    agent_first: bool = False
    interval: float = 1.0
    inflight: dict[str, int] = field(default_factory=dict)  # queue → attempts running
    _waiters: dict[str, tuple[frozenset[str], asyncio.Future[Mapping[str, str]]]] = field(
        default_factory=dict)
    _live: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def store(self) -> CallbackStore:
        return self.runner.store

    async def run(self) -> None:
        """Recover what a previous run left, then tick every ``interval`` seconds until
        cancelled; a failed tick is logged."""
        try:
            await self.recover()
        except AcdError as err:
            log.warning("dial-back: recovery: %s", err)
        while True:
            try:
                await self.tick()
            except AcdError as err:
                log.warning("dial-back: %s", err)
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        for job in list(self._live):
            job.cancel()
        await asyncio.gather(*self._live, return_exceptions=True)

    async def tick(self) -> int:
        """Queue due callbacks, expire old ones, start what free members allow; return how
        many attempts started."""
        now = self.runner.clock.now()
        await promote_due_callbacks(self.store, self.runner.retry, now)
        if not self.link.connected.is_set():
            return 0
        started = 0
        for queue in sorted(self.board.queues()):
            room = len(self.board.free(queue)) - self.inflight.get(queue, 0)
            if room <= 0:
                continue
            for _, task in await self.store.pool.candidates([dialplan_skill(queue)], room):
                started += await self.start(task, queue)
        return started

    async def recover(self, scan: int = 10_000) -> int:
        """Tasks a stopped ``acdkit agi`` left held by a queue (its dial lock expired): an
        attempt without outcome is finished as ``failed`` and decided by the retry policy, a
        held task without an open attempt goes back to its queue, an answered one is
        completed (its end was not seen). Returns how many it touched."""
        touched = 0
        for task in await self.store.pool.list_tasks(scan):
            holder = task.agent_id or ""
            queue = holder[len(HOLDER_PREFIX):]
            if not holder.startswith(HOLDER_PREFIX) or \
                    task.state not in (TaskState.RESERVED, TaskState.ACTIVE) or \
                    await self.store.dial_lock_held(task.id):
                continue
            touched += 1
            await self._recover_one(task, queue)
        return touched

    async def _recover_one(self, task: Task, queue: str) -> None:
        now = self.runner.clock.now()
        if task.state is TaskState.ACTIVE:
            done = await self.store.pool.move_task(
                task.id, TaskEvent.COMPLETE, now, outcome="answered; end not seen")
            await self.store.forget_callback(done)
            return
        last = await self.store.last_attempt(task.id)
        if last is None or last.decided:
            await self.store.unhold_for_queue(task.id, holder_of(queue), now)
            return
        outcome = last.outcome or await self.store.finish_attempt(
            task.id, last.n, DialOutcome.FAILED, now, detail="acdkit agi stopped")
        await self.store.mark_decided(task.id, last.n,
                                      await self._decide(task.id, last.n, outcome, queue))
        if outcome is DialOutcome.ANSWERED:  # the customer was reached: never dial again
            await self.store.pool.move_task(task.id, TaskEvent.CONNECT, now)
            await self._recover_one(replace(task, state=TaskState.ACTIVE), queue)
        log.info("dial-back %s: recovered attempt %d (%s)", task.id, last.n, outcome.value)

    async def start(self, task: Task, queue: str) -> int:
        """Hold ``task`` for ``queue`` and start its attempt in the background (1), or 0."""
        token = await self.store.acquire_dial_lock(task.id)
        if token is None:
            return 0
        now = self.runner.clock.now()
        if not await self.store.hold_for_queue(task.id, holder_of(queue), now):
            await self.store.release_dial_lock(task.id, token)
            return 0
        self.inflight[queue] = self.inflight.get(queue, 0) + 1
        job = asyncio.create_task(self._attempt(task.id, queue, token), name=f"dial {task.id}")
        self._live.add(job)
        job.add_done_callback(self._live.discard)
        return 1

    async def _attempt(self, task_id: str, queue: str, token: str) -> None:
        answered: Answered | None = None
        try:
            answered = await self._locked(task_id, queue)
        except Exception:
            log.exception("dial-back %s: attempt failed", task_id)
        finally:
            self.inflight[queue] = max(0, self.inflight.get(queue, 1) - 1)
            await self.store.release_dial_lock(task_id, token)
        if answered is not None:
            await self._until_connected(task_id, *answered)

    async def _locked(self, task_id: str, queue: str) -> Answered | None:
        """One attempt under the dial lock; what to wait for when it was answered."""
        task = await self.store.pool.get_task(task_id)
        if task is None or task.state is not TaskState.RESERVED:
            return None
        # jobs.DialBack's gate: expired, outside calling hours or over the dial rate
        # (postponed), no longer allowed (refused); it applies what follows itself.
        if await self.runner._gate(task):
            return None
        n = await self.store.next_attempt_number(task_id)
        member = self._member(queue)
        channel_id = agent_leg(task_id, n, "a" if member else "c")
        await self.store.open_attempt(task_id, n, task.agent_id or "", self.runner.clock.now(),
                                      number=task.number, base_attempts=task.attempts)
        ended = self._watch(channel_id, AGENT_LEG if member else IN_QUEUE)
        outcome, detail = await self._dial(task, queue, channel_id, member, ended)
        outcome = await self.store.finish_attempt(task_id, n, outcome,
                                                  self.runner.clock.now(), detail=detail)
        log.info("dial-back %s: attempt %d %s (%s)", task_id, n, outcome.value, detail)
        decided = await self._decide(task_id, n, outcome, queue)
        await self.store.mark_decided(task_id, n, decided)
        if outcome is not DialOutcome.ANSWERED:
            self._waiters.pop(channel_id, None)
            return None
        return channel_id, member, ended

    def _member(self, queue: str) -> str | None:
        if not self.agent_first:
            return None
        free = self.board.free(queue)
        return free[0].interface if free else None

    async def _dial(self, task: Task, queue: str, channel_id: str, member: str | None,
                    ended: asyncio.Future[Mapping[str, str]]) -> tuple[DialOutcome, str]:
        action = originate_action(task, queue, channel_id, self.plan, member)
        try:
            reply = await self.link.action(action, timeout=self.plan.ring_timeout + 15)
        except AmiUnavailable as err:
            return DialOutcome.FAILED, str(err)[:120]
        outcome, detail = outcome_of_reply(reply)
        if member is None:
            return outcome, detail
        if outcome is not DialOutcome.ANSWERED:  # the member did not take it: no customer
            return DialOutcome.AGENT_NO_ANSWER, f"member {member}: {detail}"
        try:
            event = await asyncio.wait_for(ended, self.plan.ring_timeout + 15)
        except TimeoutError:
            return DialOutcome.FAILED, f"member {member}: no DialEnd"
        return outcome_of_dial_status(event.get("DialStatus", "")), f"member {member}"

    async def _decide(self, task_id: str, n: int, outcome: DialOutcome, queue: str) -> str:
        if outcome is DialOutcome.AGENT_NO_ANSWER:
            await self.store.unhold_for_queue(task_id, holder_of(queue),
                                              self.runner.clock.now())
            return Next.REQUEUE.value
        attempt = await self.store.get_attempt(task_id, n)
        assert attempt is not None
        return await self.runner._decide(attempt, outcome)

    async def _until_connected(self, task_id: str, channel_id: str, member: str | None,
                               ended: asyncio.Future[Mapping[str, str]]) -> None:
        """Answered: active until a member takes the customer (``AgentConnect``) or the
        customer leaves; agent first, the member is on the line already."""
        try:
            await self.store.pool.move_task(task_id, TaskEvent.CONNECT, self.runner.clock.now())
            if member is not None:
                outcome = f"connected to {member}"
            else:
                try:
                    event = await asyncio.wait_for(ended, MAX_IN_QUEUE)
                except TimeoutError:
                    event = {"Event": "timeout"}
                what = event.get("Event", "")
                outcome = (f"connected to {event.get('MemberName') or event.get('Interface')}"
                           if what == "AgentConnect"
                           else f"answered; {what} before a member answered")
            task = await self.store.pool.move_task(task_id, TaskEvent.COMPLETE,
                                                   self.runner.clock.now(), outcome=outcome)
        except (InvalidTransition, AcdError) as err:
            log.warning("dial-back %s: not completed: %s", task_id, err)
            return
        finally:
            self._waiters.pop(channel_id, None)
        await self.store.forget_callback(task)
        log.info("dial-back %s: %s", task_id, outcome)

    def _watch(self, channel_id: str,
               events: frozenset[str] = IN_QUEUE) -> asyncio.Future[Mapping[str, str]]:
        """A future for the first of ``events`` on channel ``channel_id``."""
        future: asyncio.Future[Mapping[str, str]] = asyncio.get_running_loop().create_future()
        self._waiters[channel_id] = (events, future)
        return future

    def on_event(self, event: Mapping[str, str]) -> None:
        """Feed AMI events: the end of a dial-back's call wakes whoever waits for that
        channel id (customer first: ``AgentConnect`` or the customer leaving; agent first:
        the member's ``DialEnd`` to the customer, or the member hanging up)."""
        name = event.get("Event", "")
        waiter = self._waiters.get(event.get("Uniqueid", ""))
        if waiter is None or name not in waiter[0]:
            return
        if name == "DialEnd" and not event.get("DialStatus"):
            return
        del self._waiters[event.get("Uniqueid", "")]
        if not waiter[1].done():
            waiter[1].set_result(event)


def is_dialplan_task(task: Task) -> bool:
    return queue_of_skill(task.skill) is not None
