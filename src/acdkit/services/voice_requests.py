"""What the voice-request jobs run (``acdkit.jobs.transcribe``, ``deliver_reply``).

``transcribe(task_id)``: recognise the caller's recording, store transcript and confidence (or
a clear ``untranscribed`` state with the reason: the audio stays), then release the work order
into the pool at once.

``deliver_reply(task_id)``: one delivery call of the reply, on the callback command channel
(store/callbacks.py): the job takes the dial lock, checks the number policy and calling hours,
opens attempt *n* with the command ``{"op": "deliver_reply", "task_id", "attempt", "number"}``
and waits for serve's outcome (ari/reply_delivery.py places the call on the fixed channel id
``vr-<task_id>-<n>-c``). Then: delivered, a retry queued by ``callbacks.intervals``, or
``undelivered`` after ``callbacks.max_attempts`` calls. Outcomes go to the audit stream.
A text reply first goes as a text message when ``[messaging]`` is on (``Messenger`` port,
acdkit/messaging.py): once per reply; taken = delivered, refused = the calls as above.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from acdkit.core.callbacks import DialOutcome, RetryPolicy
from acdkit.core.errors import AcdError, InvalidInput
from acdkit.core.numbers import NumberPolicy, check_dialable
from acdkit.core.requests import (
    ReplyKind,
    RequestEvent,
    RequestStatus,
    VoiceRequest,
    after_delivery,
)
from acdkit.core.tasks import TaskEvent, TaskState
from acdkit.jobqueue import Recovery, Requeuing
from acdkit.ports import Clock, JobQueue, MessageResult, Messenger, SystemClock, Transcriber
from acdkit.store.callbacks import CallbackStore
from acdkit.store.requests import RequestStore, enqueue_delivery

log = logging.getLogger(__name__)


async def run_transcription(store: RequestStore, transcriber: Transcriber, task_id: str,
                            clock: Clock) -> str:
    """Transcribe request ``task_id``; returns its status afterwards (or ``no_request``)."""
    request = await store.get(task_id)
    if request is None:
        log.warning("transcribe %s: no such voice request", task_id)
        return "no_request"
    if request.status is RequestStatus.TRANSCRIBING:
        try:
            text, confidence = await asyncio.to_thread(
                transcriber.transcribe, store.audio_path(request.audio))
            request = await store.move(task_id, RequestEvent.TRANSCRIBED, clock.now(),
                                       transcript=text, confidence=confidence,
                                       engine=transcriber.name)
        except Exception as bad:  # bad audio, or an engine that broke: the audio serves
            log.warning("transcribe %s: %s", task_id, bad,
                        exc_info=not isinstance(bad, InvalidInput))
            why = str(bad) if isinstance(bad, InvalidInput) else f"engine failed: {bad!r}"
            request = await store.move(task_id, RequestEvent.TRANSCRIPTION_FAILED, clock.now(),
                                       engine=transcriber.name, error=why[:300])
    await release(store, task_id, clock.now())
    return request.status.value


async def release(store: RequestStore, task_id: str, now: float) -> None:
    """Put a work order held for its transcript into the pool now (idempotent)."""
    task = await store.pool.get_task(task_id)
    if task is not None and task.state is TaskState.SCHEDULED:
        try:
            await store.pool.move_task(task_id, TaskEvent.DUE, now)
        except AcdError as err:  # promoted meanwhile (maintenance), or gone
            log.info("request %s: not released: %s", task_id, err)


@dataclass
class Delivery:
    """One delivery call of one reply, through serve (agent-less: the reply is recorded)."""

    requests: RequestStore
    calls: CallbackStore
    jobs: JobQueue
    retry: RetryPolicy
    numbers: NumberPolicy
    wait_timeout: float
    clock: Clock = field(default_factory=SystemClock)
    messenger: Messenger | None = None  # a text reply goes as a message first ([messaging])

    async def run(self, task_id: str) -> str:
        """Place the next call of ``task_id``'s reply; returns ``nothing``, ``locked``,
        ``postponed``, ``refused``, or the call's outcome."""
        request = await self.requests.get(task_id)
        if request is None or request.status is not RequestStatus.REPLIED:
            return "nothing"
        token = await self.calls.acquire_dial_lock(task_id)
        if token is None:
            return "locked"
        try:
            return await self._locked(task_id, token)
        finally:
            await self.calls.release_dial_lock(task_id, token)

    async def _locked(self, task_id: str, token: str) -> str:
        request = await self.requests.get(task_id)
        if request is None or request.status is not RequestStatus.REPLIED:
            return "nothing"
        if await self._messaged(request):
            return "messaged"
        last = await self.calls.last_attempt(task_id)
        if last is None or last.decided:
            stopped = await self._gate(task_id, request.number)
            if stopped:
                return stopped
            n = last.n + 1 if last else 1
            command = {"op": "deliver_reply", "task_id": task_id, "attempt": n,
                       "number": request.number}
            await self.calls.open_attempt(task_id, n, "", self.clock.now(),
                                          number=request.number, command=command)
            await self.requests.count_delivery(task_id)
        else:
            n = last.n
        outcome = await self._wait(task_id, n, token)
        if outcome is None:
            return "lost_lock"
        await self._decide(task_id, outcome)
        await self.calls.mark_decided(task_id, n, outcome.value)
        return outcome.value

    async def _messaged(self, request: VoiceRequest) -> bool:
        """A text reply goes as a message first, once per reply; True when it was taken
        (delivered). Refused or unreachable: False, and the call follows as before. Both
        outcomes are in the request's history (``reply_message``)."""
        if self.messenger is None or request.reply_kind is not ReplyKind.TEXT or \
                not await self.requests.claim_message(request.task_id, request.updated_at):
            return False
        text = f"Answer to your request {request.ref}: {request.reply_text}"
        try:
            result = await self.messenger.send(request.number, text)
        except AcdError as exc:
            result = MessageResult(False, str(exc)[:200])
        now = self.clock.now()
        await self.requests.pool.audit.append(
            request.task_id, "reply_message", now=now, via=self.messenger.name,
            to=request.number, outcome="sent" if result.sent else "refused",
            detail=result.detail)
        log.info("deliver_reply %s: message via %s %s (%s)", request.task_id,
                 self.messenger.name, "sent" if result.sent else "refused", result.detail)
        if result.sent:
            await self.requests.move(request.task_id, RequestEvent.DELIVERED, now)
        return result.sent

    async def _gate(self, task_id: str, number: str) -> str | None:
        now = self.clock.now()
        dialed, window_left = await self.calls.dial_count(number)
        verdict = check_dialable(number, self.numbers, pending_for_number=0,
                                 recent_attempts_number=dialed, recent_requests_caller=0,
                                 now=datetime.fromtimestamp(now, UTC))
        if verdict.allowed:
            return None
        if verdict.not_before is not None or verdict.reason == "rate_limited_number":
            due = verdict.not_before.timestamp() if verdict.not_before else now + window_left
            await self.requests.pool.audit.append(task_id, "delivery_postponed", now=now,
                                                  reason=verdict.reason)
            await enqueue_delivery(self.requests, self.jobs, task_id, at=max(due, now + 1))
            return "postponed"
        await self.requests.move(task_id, RequestEvent.DELIVERY_FAILED, now,
                                 error=f"refused: {verdict.reason}")
        return "refused"

    async def _wait(self, task_id: str, n: int, token: str) -> DialOutcome | None:
        deadline = time.monotonic() + self.wait_timeout
        step = max(0.5, self.calls.lock_ttl / 3)
        while (left := deadline - time.monotonic()) > 0:
            outcome = await self.calls.wait_attempt(task_id, n, min(left, step))
            if outcome is not None:
                return outcome
            if not await self.calls.renew_dial_lock(task_id, token):
                return None
        return await self.calls.finish_attempt(task_id, n, DialOutcome.FAILED,
                                               self.clock.now(), detail="timeout", dialed=False)

    async def _decide(self, task_id: str, outcome: DialOutcome) -> None:
        request = await self.requests.get(task_id)
        if request is None or request.status is not RequestStatus.REPLIED:
            return
        now = self.clock.now()
        event, due = after_delivery(request, outcome, now, self.retry)
        if event is not None:
            await self.requests.move(task_id, event, now, error=f"last call: {outcome.value}")
        elif due is not None:
            log.info("deliver_reply %s: %s, next call at %.0f", task_id, outcome.value, due)
            await enqueue_delivery(self.requests, self.jobs, task_id, at=due)


async def recover_deliveries(requests: RequestStore, calls: CallbackStore,
                             jobs: Requeuing) -> list[str]:
    """Re-enqueue ``deliver_reply`` where a dead worker left a delivery call undecided (its
    attempt is open or has an outcome nobody applied, and nobody holds the dial lock); the new
    job resumes waiting for that attempt. A job of a dead worker still ``started`` in RQ is
    replaced (``RqJobQueue.requeue``). Returns the job ids enqueued."""
    recovery = Recovery(jobs, stale_after=calls.lock_ttl)
    for task_id in await requests.delivering():
        last = await calls.last_attempt(task_id)
        if last is None or last.decided or await calls.dial_lock_held(task_id):
            continue
        await enqueue_delivery(requests, recovery, task_id, attempt=last.n)
    return recovery.enqueued
