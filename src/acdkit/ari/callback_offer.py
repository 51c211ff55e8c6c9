"""The overflow offer to a waiting caller: 1 instant callback (keeps its place), 2 a
scheduled one (HHMM), 3 a voice request (when enabled), nothing: keep waiting.

The caller's number is read back for confirmation or keyed in, and goes through the dialing
policy before anything is stored; refusals are spoken in plain words. The callback is in the
pool (or the due set) before the caller hears the confirmation and is hung up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from acdkit.ari.caller_number import KEY_WAIT, ask, confirm_number, refuse
from acdkit.ari.control import AriControl
from acdkit.ari.session import Session
from acdkit.ari.spawner import Spawner
from acdkit.ari.voice_request import VoiceRequests, leave_request
from acdkit.config import CenterSettings, OverflowSettings
from acdkit.core import overflow
from acdkit.core.callbacks import reference
from acdkit.core.dtmf import BusinessHours, parse_hhmm, say_when
from acdkit.core.errors import BadDtmf, InvalidTransition, NumberRejected
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.ports import Clock, Messenger
from acdkit.store import self_service
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
# Every waiting caller checks the overflow rules each second once an offer could be due;
# reading every agent for each of them (one hash per agent per caller per second) swamped
# the event loop under load. One read per AGENTS_TTL seconds serves all callers of an app.
AGENTS_TTL = 1.0


class LoggedIn:
    """Logged-in agents per skill, read at most once per ``AGENTS_TTL`` s for all callers."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._cached: tuple[float, asyncio.Task[Counter[str]]] | None = None

    async def per_skill(self, now: float) -> Counter[str]:
        cached = self._cached
        if cached is None or not 0 <= now - cached[0] < AGENTS_TTL or (
                cached[1].done() and (cached[1].cancelled() or cached[1].exception() is not None)):
            cached = (now, asyncio.create_task(self._count()))
            self._cached = cached
        return await asyncio.shield(cached[1])  # a caller hanging up does not cancel the read

    async def _count(self) -> Counter[str]:
        return Counter(skill for a in await self.pool.list_agents() if a.logged_in
                       for skill in a.skills)


@dataclass(frozen=True)
class OverflowOffer:
    """What the overflow offer uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    callbacks: CallbackStore
    numbers: NumberPolicy
    center: CenterSettings  # [center]: the timezone
    overflow: OverflowSettings  # [overflow]
    confirm_by_message: bool  # callbacks.confirm_by_message
    messenger: Messenger | None
    spawner: Spawner
    voice: VoiceRequests  # offer 3: a voice request
    logged_in: LoggedIn = field(compare=False)


def rule(o: OverflowSettings) -> overflow.OverflowRule:
    """The overflow rules of the ``[overflow]`` settings ``o``."""
    return overflow.OverflowRule(
        wait_over=o.wait_over or None, position_over=o.position_over or None,
        when_no_agents=o.when_no_agents, when_out_of_hours=o.when_out_of_hours,
        first_after=o.first_after, repeat_every=o.repeat_every, avg_handle=o.avg_handle)


async def queue_view(ctx: OverflowOffer, task: Task, now: float) -> overflow.QueueView | None:
    position = await ctx.pool.queue_position(task.id)
    if position is None:
        return None  # no longer waiting in line (an agent is being connected)
    logged_in = (await ctx.logged_in.per_skill(now))[task.skill]
    hours = BusinessHours.parse(ctx.overflow.business_hours, "overflow.business_hours")
    local = datetime.fromtimestamp(now, ZoneInfo(ctx.center.timezone))
    return overflow.QueueView(position=position, agents_logged_in=logged_in,
                              in_hours=hours.is_open(local), waited=now - task.enqueued_at)


async def offer(ctx: OverflowOffer, session: Session, task: Task, reason: str) -> bool:
    """Make the offer; True when the caller left the line with a callback booked."""
    log.info("task %s: overflow offer (%s)", task.id, reason)
    session.clear_digits()
    key = await session.play(["sound:acdkit/overflow-offer"], interruptible=True)
    key = session.digits.pop(0) if key else await session.read_key(KEY_WAIT)
    choice = overflow.choice(key)
    if choice is overflow.OfferChoice.VOICE_REQUEST and not ctx.overflow.voice_requests:
        choice = overflow.OfferChoice.KEEP_WAITING
    if choice is overflow.OfferChoice.VOICE_REQUEST:
        return await leave_request(ctx.voice, session, task)
    if choice not in (overflow.OfferChoice.INSTANT_CALLBACK,
                      overflow.OfferChoice.SCHEDULED_CALLBACK):
        return False
    number = await confirm_number(ctx.pool, ctx.numbers, session, task)
    if number is None:
        return False
    due_at = None
    if choice is overflow.OfferChoice.SCHEDULED_CALLBACK:
        due_at = await choose_time(ctx, session)
        if due_at is None:
            return False
    booked = await _book(ctx, session, task, number, due_at)
    if booked is None:
        return False
    ref = reference(booked.id)
    confirm_by_message(ctx, booked)
    await session.play(["sound:acdkit/cb-booked", f"digits:{ref}", "sound:acdkit/goodbye"])
    await ctx.control.hangup(session.channel_id)
    return True


def confirm_by_message(ctx: OverflowOffer, booked: Task) -> None:
    """With ``callbacks.confirm_by_message`` and a messenger, text the booking's time and
    reference to the customer (in the background: the caller is not kept waiting)."""
    if ctx.confirm_by_message and ctx.messenger is not None:
        tz = ZoneInfo(ctx.center.timezone)
        ctx.spawner.spawn(self_service.confirm(ctx.callbacks, ctx.messenger, booked, tz,
                                               ctx.clock.now()), f"confirm {booked.id}")


async def choose_time(ctx: OverflowOffer, session: Session) -> float | None:
    """A time keyed as HHMM (today, or tomorrow when past), read back; epoch or None."""
    tz = ZoneInfo(ctx.center.timezone)
    hours = BusinessHours.parse(ctx.overflow.business_hours, "overflow.business_hours")
    for _ in range(2):
        await session.play(["sound:acdkit/cb-enter-time"], interruptible=True)
        digits = await session.read_digits(max_digits=4, timeout=KEY_WAIT)
        now = datetime.fromtimestamp(ctx.clock.now(), tz)
        try:
            when = parse_hhmm(digits, now, tz, business_hours=hours,
                              horizon=timedelta(days=ctx.overflow.horizon_days))
        except BadDtmf as bad:
            log.info("channel %s: time %r refused: %s", session.channel_id, digits, bad.reason)
            await session.play(["sound:acdkit/refused-time"])
            continue
        key = await ask(session, ["sound:acdkit/cb-time-is", *say_when(when, now),
                                  "sound:acdkit/cb-time-confirm"])
        if key == "1":
            return when.astimezone(UTC).timestamp()
    return None


async def _book(ctx: OverflowOffer, session: Session, call_task: Task, number: str,
                due_at: float | None) -> Task | None:
    """Store the callback, then take the caller out of line; None when refused or when an
    agent took the call meanwhile (the callback is then cancelled)."""
    now = ctx.clock.now()
    current = await ctx.pool.get_task(call_task.id)
    if current is None or current.state is not TaskState.QUEUED:
        log.info("task %s: an agent is taking the call; no callback", call_task.id)
        return None
    callback = replace(call_task, id=uuid.uuid4().hex[:16], kind=TaskKind.CALLBACK,
                       number=number, channel_id=None, agent_id=None, created_at=now,
                       state=TaskState.SCHEDULED if due_at else TaskState.QUEUED,
                       due_at=due_at, enqueued_at=due_at or call_task.enqueued_at,
                       source=f"overflow:{call_task.source}", outcome="", node="")
    try:
        result = await ctx.callbacks.book_callback(
            callback, policy=ctx.numbers, caller_number=session.caller_number, now=now,
            line=session.channel_name)
    except NumberRejected as refused:
        await refuse(ctx.pool, session, call_task, refused)
        return None
    booked: Task = result.task
    try:
        await ctx.pool.move_task(call_task.id, TaskEvent.CANCEL, now,
                                 outcome=f"caller chose callback {booked.id}")
    except InvalidTransition:
        log.info("task %s: an agent took the call during the offer", call_task.id)
        if not result.updated:  # an update kept an older pending callback: leave it be
            await ctx.pool.move_task(booked.id, TaskEvent.CANCEL, now,
                                     outcome="caller was served")
            await ctx.callbacks.forget_callback(booked)
        return None
    log.info("task %s became callback %s for %s%s", call_task.id, booked.id, number,
             f" due {due_at:.0f}" if due_at else "")
    return booked
