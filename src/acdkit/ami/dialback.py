"""Dialplan-mode dial-back: ``acdkit agi`` calls customers back through AMI into ``Queue()``.

Which tasks: those of the dialplan-mode skills (``queue:<name>``, ``dialplan_vars``), booked by
the ``callback-offer`` route or added as follow-ups of abandoned callers. No acdkit agent has
such a skill, so the Stasis dispatcher never takes them; here a task is *held by its queue*
(``agent_id = ami:<queue>``, ``CallbackStore.hold_for_queue``) while it is dialed.

When: as many at once per queue as the queue has free members (``MemberBoard``, from AMI),
best first by the pool's order. Each attempt runs under the dial lock of store/callbacks.py
(never two dials of one callback at once), renewed from start to end, so no other
``acdkit agi`` takes a live attempt for a dead one: the dialing policy (``DialBack``
gate: calling hours, dial rate, do-not-call, expiry), the attempt recorded *before* the
Originate is sent (its own ChannelId), the Originate with a timeout, the outcome recorded
with ``finish_attempt`` and applied with the same retry policy as Stasis mode. An answer lost
in an AMI drop is unknown, not failed: the ChannelId is looked for on Asterisk (``Status``)
and the retry policy decides only once the channel is provably gone. Answered: the task is
active until a member takes the customer (``AgentConnect``: completed) or the customer
leaves ``Queue()`` first (``abandoned``: retried, then failed, as a call not answered).
See docs/dial-back.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from acdkit.ami.link import AmiLink
from acdkit.ami.originate import (
    DialPlan,
    channel_status,
    originate_action,
    outcome_of_dial_status,
    outcome_of_reply,
)
from acdkit.core.callbacks import DialOutcome, Next
from acdkit.core.errors import AcdError, AmiUnavailable, InvalidTransition
from acdkit.core.members import MemberBoard
from acdkit.core.tasks import Task, TaskEvent, TaskState
from acdkit.dialplan_vars import dialplan_skill, queue_of_skill
from acdkit.services.dial_back import DialBack
from acdkit.services.maintenance import promote_due_callbacks
from acdkit.store.callbacks import CallbackStore, agent_leg

log = logging.getLogger(__name__)
HOLDER_PREFIX = "ami:"
RECOVER_EVERY = 30.0  # seconds between recovery rounds (a live attempt is looked at again)
CHECK_EVERY = 10.0  # seconds between looks for a waiting attempt's channel on Asterisk
IN_QUEUE = frozenset({"AgentConnect", "Hangup", "QueueCallerAbandon"})
AGENT_LEG = frozenset({"DialEnd", "Hangup"})
# An answered attempt: its number, channel id, the member (agent first) and the end of its call.
Answered = tuple[int, str, str | None, "asyncio.Future[Mapping[str, str]]"]


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
        """Tick every ``interval`` seconds until cancelled, and every ``RECOVER_EVERY`` s
        recover what a stopped ``acdkit agi`` left (at once on start); failures are logged."""
        loop = asyncio.get_running_loop()
        recovered = -RECOVER_EVERY
        while True:
            try:
                if loop.time() - recovered >= RECOVER_EVERY:
                    recovered = loop.time()
                    await self.recover()
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
        """Tasks held by a queue whose dial lock is free (the ``acdkit agi`` that dialed them
        stopped): an attempt without outcome is looked for on Asterisk by its ChannelId and
        left alone while its channel lives; once provably gone, it is finished (``failed``,
        or ``abandoned`` when the customer had answered: no member connection was seen) and
        the retry policy decides. A held task without an open attempt goes back to its
        queue. Returns how many it touched."""
        touched = 0
        for task in await self.store.pool.list_tasks(scan):
            holder = task.agent_id or ""
            queue = holder[len(HOLDER_PREFIX):]
            if not holder.startswith(HOLDER_PREFIX) or \
                    task.state not in (TaskState.RESERVED, TaskState.ACTIVE) or \
                    await self.store.dial_lock_held(task.id):
                continue
            touched += await self._recover_one(task, queue)
        return touched

    async def _recover_one(self, task: Task, queue: str) -> int:
        now = self.runner.clock.now()
        last = await self.store.last_attempt(task.id)
        if last is None or last.decided:
            if task.state is TaskState.RESERVED:
                await self.store.unhold_for_queue(task.id, holder_of(queue), now)
            else:  # connected to a member, its completion not written
                await self._complete(task.id, "connected; end not seen")
            return 1
        outcome = last.outcome
        if outcome is None:
            live = [await self._channel_live(c) for c in (last.customer_leg, last.agent_leg)]
            if any(x is not False for x in live):  # alive, or Asterisk cannot say now
                log.info("dial-back %s: attempt %d still on Asterisk (or unknown): left alone",
                         task.id, last.n)
                return 0
            answered = task.state is TaskState.ACTIVE
            outcome = await self.store.finish_attempt(
                task.id, last.n, DialOutcome.ABANDONED if answered else DialOutcome.FAILED,
                now, detail="acdkit agi stopped; channel gone, end not seen")
        await self.store.mark_decided(task.id, last.n,
                                      await self._decide(task.id, last.n, outcome, queue))
        if outcome is DialOutcome.ANSWERED:
            await self._complete(task.id, "connected; end not seen")
        log.info("dial-back %s: recovered attempt %d (%s)", task.id, last.n, outcome.value)
        return 1

    async def _channel_live(self, channel_id: str) -> bool | None:
        """Whether Asterisk has channel ``channel_id`` now; None when it cannot be asked."""
        try:
            return channel_status(await self.link.action(
                {"Action": "Status", "Channel": channel_id, "AllVariables": "false"}))
        except AmiUnavailable:
            return None

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
        """One attempt, start to end, under the dial lock, renewed all along: while the
        Originate rings and while the answered customer waits in ``Queue()``."""
        keeper = asyncio.create_task(self._keep_lock(task_id, token), name=f"lock {task_id}")
        dialing = True
        try:
            answered = await self._locked(task_id, queue)
            self._dialed(queue)
            dialing = False
            if answered is not None:
                await self._until_connected(task_id, queue, *answered)
        except Exception:
            log.exception("dial-back %s: attempt failed", task_id)
        finally:
            if dialing:
                self._dialed(queue)
            keeper.cancel()
            await self.store.release_dial_lock(task_id, token)

    def _dialed(self, queue: str) -> None:
        self.inflight[queue] = max(0, self.inflight.get(queue, 1) - 1)

    async def _keep_lock(self, task_id: str, token: str) -> None:
        """Renew the dial lock every third of its lifetime (as ``DialBack`` does), so
        no other ``acdkit agi`` recovers a live attempt."""
        while True:
            await asyncio.sleep(max(0.2, self.store.lock_ttl / 3))
            if not await self.store.renew_dial_lock(task_id, token):
                log.warning("dial-back %s: lost the dial lock mid-attempt", task_id)
                return

    async def _locked(self, task_id: str, queue: str) -> Answered | None:
        """One attempt's dialing under the dial lock; what to wait for when it was answered."""
        task = await self.store.pool.get_task(task_id)
        if task is None or task.state is not TaskState.RESERVED:
            return None
        # DialBack's gate: expired, outside calling hours or over the dial rate
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
        if outcome is None:  # the AMI link dropped: Asterisk may have placed the call
            outcome, detail = await self._unknown(channel_id, ended, detail)
        if outcome is DialOutcome.ANSWERED and member is None:
            # The customer is in Queue(): served only once a member takes the call.
            await self.store.update_attempt(task_id, n, state="connected", detail=detail)
            return n, channel_id, member, ended
        outcome = await self.store.finish_attempt(task_id, n, outcome,
                                                  self.runner.clock.now(), detail=detail)
        log.info("dial-back %s: attempt %d %s (%s)", task_id, n, outcome.value, detail)
        await self.store.mark_decided(task_id, n, await self._decide(task_id, n, outcome, queue))
        if outcome is not DialOutcome.ANSWERED:
            self._waiters.pop(channel_id, None)
            return None
        return n, channel_id, member, ended

    def _member(self, queue: str) -> str | None:
        if not self.agent_first:
            return None
        free = self.board.free(queue)
        return free[0].interface if free else None

    async def _dial(self, task: Task, queue: str, channel_id: str, member: str | None,
                    ended: asyncio.Future[Mapping[str, str]]) -> tuple[DialOutcome | None, str]:
        """The attempt's outcome, or None (with why) when the AMI link dropped meanwhile."""
        action = originate_action(task, queue, channel_id, self.plan, member)
        try:
            reply = await self.link.action(action, timeout=self.plan.ring_timeout + 15)
        except AmiUnavailable as err:
            return None, str(err)[:120]
        outcome, detail = outcome_of_reply(reply)
        if member is None:
            return outcome, detail
        if outcome is not DialOutcome.ANSWERED:  # the member did not take it: no customer
            return DialOutcome.AGENT_NO_ANSWER, f"member {member}: {detail}"
        try:
            event = await asyncio.wait_for(asyncio.shield(ended), self.plan.ring_timeout + 15)
        except TimeoutError:
            return None, f"member {member}: no DialEnd"
        return outcome_of_dial_status(event.get("DialStatus", "")), f"member {member}"

    async def _unknown(self, channel_id: str, ended: asyncio.Future[Mapping[str, str]],
                       why: str) -> tuple[DialOutcome, str]:
        """The outcome of an attempt whose answer was lost: wait (lock renewed) until
        Asterisk can be asked, and while channel ``channel_id`` lives; then ``failed`` (the
        retry policy decides), unless its end was seen (a member took the customer)."""
        while not ended.done():
            live = await self._channel_live(channel_id) if self.link.connected.is_set() \
                else None
            if live is False:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(ended), CHECK_EVERY)
        if ended.done() and ended.result().get("Event") == "AgentConnect":
            return DialOutcome.ANSWERED, f"{why}; then connected"
        return DialOutcome.FAILED, f"{why}; channel {channel_id} gone"

    async def _decide(self, task_id: str, n: int, outcome: DialOutcome, queue: str) -> str:
        if outcome is DialOutcome.AGENT_NO_ANSWER:
            await self.store.unhold_for_queue(task_id, holder_of(queue),
                                              self.runner.clock.now())
            return Next.REQUEUE.value
        attempt = await self.store.get_attempt(task_id, n)
        assert attempt is not None
        return await self.runner._decide(attempt, outcome)

    async def _until_connected(self, task_id: str, queue: str, n: int, channel_id: str,
                               member: str | None,
                               ended: asyncio.Future[Mapping[str, str]]) -> None:
        """Answered: active until a member takes the customer (``AgentConnect``: completed)
        or the customer leaves first (``abandoned``: the retry policy decides); agent first,
        the member is on the line already."""
        try:
            await self.store.pool.move_task(task_id, TaskEvent.CONNECT, self.runner.clock.now())
            if member is not None:
                await self._complete(task_id, f"connected to {member}")
                return
            event = await self._in_queue_end(channel_id, ended)
        finally:
            self._waiters.pop(channel_id, None)
        if event.get("Event") == "AgentConnect":
            who = event.get("MemberName") or event.get("Interface")
            await self._finish(task_id, n, DialOutcome.ANSWERED, f"connected to {who}", queue)
            await self._complete(task_id, f"connected to {who}")
        else:
            await self._finish(task_id, n, DialOutcome.ABANDONED,
                               f"answered; {event.get('Event')} before a member answered",
                               queue)

    async def _in_queue_end(self, channel_id: str,
                            ended: asyncio.Future[Mapping[str, str]]) -> Mapping[str, str]:
        """The end of the customer's wait in ``Queue()``; its channel checked on Asterisk
        every ``CHECK_EVERY`` s, so an end lost in an AMI drop is noticed."""
        while True:
            with contextlib.suppress(TimeoutError):
                return await asyncio.wait_for(asyncio.shield(ended), CHECK_EVERY)
            if self.link.connected.is_set() and await self._channel_live(channel_id) is False:
                return ended.result() if ended.done() else {"Event": "end not seen (AMI)"}

    async def _finish(self, task_id: str, n: int, outcome: DialOutcome, detail: str,
                      queue: str) -> None:
        outcome = await self.store.finish_attempt(task_id, n, outcome, self.runner.clock.now(),
                                                  detail=detail)
        log.info("dial-back %s: attempt %d %s (%s)", task_id, n, outcome.value, detail)
        await self.store.mark_decided(task_id, n, await self._decide(task_id, n, outcome, queue))

    async def _complete(self, task_id: str, outcome: str) -> None:
        try:
            task = await self.store.pool.move_task(task_id, TaskEvent.COMPLETE,
                                                   self.runner.clock.now(), outcome=outcome)
        except (InvalidTransition, AcdError) as err:
            log.warning("dial-back %s: not completed: %s", task_id, err)
            return
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
