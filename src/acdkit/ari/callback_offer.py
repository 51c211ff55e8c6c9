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
import weakref
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from acdkit.ari.session import Session
from acdkit.core import overflow
from acdkit.core.callbacks import reference
from acdkit.core.dtmf import BusinessHours, parse_hhmm, say_number, say_when
from acdkit.core.errors import BadDtmf, InvalidTransition, NumberRejected
from acdkit.core.numbers import normalize, prompt_for
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.store import self_service

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)
KEY_WAIT = 6.0
# Every waiting caller checks the overflow rules each second once an offer could be due;
# reading every agent for each of them (one hash per agent per caller per second) swamped
# the event loop under load. One read per AGENTS_TTL seconds serves all callers of an app.
AGENTS_TTL = 1.0
_logged_in: weakref.WeakKeyDictionary[StasisApp, tuple[float, asyncio.Task[Counter[str]]]] = \
    weakref.WeakKeyDictionary()


def rule(app: StasisApp) -> overflow.OverflowRule:
    o = app.settings.overflow
    return overflow.OverflowRule(
        wait_over=o.wait_over or None, position_over=o.position_over or None,
        when_no_agents=o.when_no_agents, when_out_of_hours=o.when_out_of_hours,
        first_after=o.first_after, repeat_every=o.repeat_every, avg_handle=o.avg_handle)


async def queue_view(app: StasisApp, task: Task, now: float) -> overflow.QueueView | None:
    position = await app.pool.queue_position(task.id)
    if position is None:
        return None  # no longer waiting in line (an agent is being connected)
    logged_in = (await logged_in_per_skill(app, now))[task.skill]
    hours = BusinessHours.parse(app.settings.overflow.business_hours, "overflow.business_hours")
    local = datetime.fromtimestamp(now, ZoneInfo(app.settings.center.timezone))
    return overflow.QueueView(position=position, agents_logged_in=logged_in,
                              in_hours=hours.is_open(local), waited=now - task.enqueued_at)


async def logged_in_per_skill(app: StasisApp, now: float) -> Counter[str]:
    """Logged-in agents per skill, read at most once per ``AGENTS_TTL`` s for all callers."""
    cached = _logged_in.get(app)
    if cached is None or not 0 <= now - cached[0] < AGENTS_TTL or (
            cached[1].done() and (cached[1].cancelled() or cached[1].exception() is not None)):
        cached = (now, asyncio.create_task(_count_logged_in(app)))
        _logged_in[app] = cached
    return await asyncio.shield(cached[1])  # a caller hanging up does not cancel the read


async def _count_logged_in(app: StasisApp) -> Counter[str]:
    return Counter(skill for a in await app.pool.list_agents() if a.logged_in
                   for skill in a.skills)


async def offer(app: StasisApp, session: Session, task: Task, reason: str) -> bool:
    """Make the offer; True when the caller left the line with a callback booked."""
    log.info("task %s: overflow offer (%s)", task.id, reason)
    session.clear_digits()
    key = await session.play(["sound:acdkit/overflow-offer"], interruptible=True)
    key = session.digits.pop(0) if key else await session.read_key(KEY_WAIT)
    choice = overflow.choice(key)
    if choice is overflow.OfferChoice.VOICE_REQUEST and not app.settings.overflow.voice_requests:
        choice = overflow.OfferChoice.KEEP_WAITING
    if choice is overflow.OfferChoice.VOICE_REQUEST:
        from acdkit.ari.voice_request import leave_request  # it reuses confirm_number

        return await leave_request(app, session, task)
    if choice not in (overflow.OfferChoice.INSTANT_CALLBACK,
                      overflow.OfferChoice.SCHEDULED_CALLBACK):
        return False
    number = await confirm_number(app, session, task)
    if number is None:
        return False
    due_at = None
    if choice is overflow.OfferChoice.SCHEDULED_CALLBACK:
        due_at = await choose_time(app, session)
        if due_at is None:
            return False
    booked = await _book(app, session, task, number, due_at)
    if booked is None:
        return False
    ref = reference(booked.id)
    confirm_by_message(app, booked)
    await session.play(["sound:acdkit/cb-booked", f"digits:{ref}", "sound:acdkit/goodbye"])
    await app.control.hangup(session.channel_id)
    return True


def confirm_by_message(app: StasisApp, booked: Task) -> None:
    """With ``callbacks.confirm_by_message`` and a messenger, text the booking's time and
    reference to the customer (in the background: the caller is not kept waiting)."""
    if app.settings.callbacks.confirm_by_message and app.messenger is not None:
        tz = ZoneInfo(app.settings.center.timezone)
        app.spawn(self_service.confirm(app.callbacks, app.messenger, booked, tz,
                                       app.clock.now()), f"confirm {booked.id}")


async def confirm_number(app: StasisApp, session: Session, task: Task) -> str | None:
    """The caller ID read back (1 = yes, 2 = another), or a number keyed in; E.164 or None."""
    policy = app.number_policy
    raw = session.caller_number
    for _ in range(3):
        try:
            number = normalize(raw, policy) if raw else None
        except NumberRejected as refused:
            await _refuse(app, session, task, refused)
            number = None
        if number is not None:
            key = await _ask(session, ["sound:acdkit/cb-number-is", *say_number(number),
                                       "sound:acdkit/cb-number-confirm"])
            if key == "1":
                return number
        await session.play(["sound:acdkit/cb-enter-number"], interruptible=True)
        raw = await session.read_digits(max_digits=20, timeout=KEY_WAIT)
        if not raw:
            return None
    return None


async def choose_time(app: StasisApp, session: Session) -> float | None:
    """A time keyed as HHMM (today, or tomorrow when past), read back; epoch or None."""
    tz = ZoneInfo(app.settings.center.timezone)
    hours = BusinessHours.parse(app.settings.overflow.business_hours, "overflow.business_hours")
    for _ in range(2):
        await session.play(["sound:acdkit/cb-enter-time"], interruptible=True)
        digits = await session.read_digits(max_digits=4, timeout=KEY_WAIT)
        now = datetime.fromtimestamp(app.clock.now(), tz)
        try:
            when = parse_hhmm(digits, now, tz, business_hours=hours,
                              horizon=timedelta(days=app.settings.overflow.horizon_days))
        except BadDtmf as bad:
            log.info("channel %s: time %r refused: %s", session.channel_id, digits, bad.reason)
            await session.play(["sound:acdkit/refused-time"])
            continue
        key = await _ask(session, ["sound:acdkit/cb-time-is", *say_when(when, now),
                                   "sound:acdkit/cb-time-confirm"])
        if key == "1":
            return when.astimezone(UTC).timestamp()
    return None


async def _book(app: StasisApp, session: Session, call_task: Task, number: str,
                due_at: float | None) -> Task | None:
    """Store the callback, then take the caller out of line; None when refused or when an
    agent took the call meanwhile (the callback is then cancelled)."""
    now = app.clock.now()
    current = await app.pool.get_task(call_task.id)
    if current is None or current.state is not TaskState.QUEUED:
        log.info("task %s: an agent is taking the call; no callback", call_task.id)
        return None
    callback = replace(call_task, id=uuid.uuid4().hex[:16], kind=TaskKind.CALLBACK,
                       number=number, channel_id=None, agent_id=None, created_at=now,
                       state=TaskState.SCHEDULED if due_at else TaskState.QUEUED,
                       due_at=due_at, enqueued_at=due_at or call_task.enqueued_at,
                       source=f"overflow:{call_task.source}", outcome="")
    try:
        result = await app.callbacks.book_callback(
            callback, policy=app.number_policy, caller_number=session.caller_number, now=now,
            line=session.channel_name)
    except NumberRejected as refused:
        await _refuse(app, session, call_task, refused)
        return None
    booked: Task = result.task
    try:
        await app.pool.move_task(call_task.id, TaskEvent.CANCEL, now,
                                 outcome=f"caller chose callback {booked.id}")
    except InvalidTransition:
        log.info("task %s: an agent took the call during the offer", call_task.id)
        if not result.updated:  # an update kept an older pending callback: leave it be
            await app.pool.move_task(booked.id, TaskEvent.CANCEL, now,
                                     outcome="caller was served")
            await app.callbacks.forget_callback(booked)
        return None
    log.info("task %s became callback %s for %s%s", call_task.id, booked.id, number,
             f" due {due_at:.0f}" if due_at else "")
    return booked


async def _refuse(app: StasisApp, session: Session, task: Task,
                  refused: NumberRejected) -> None:
    """Say why in plain words, and record it in the task's history."""
    log.info("channel %s: number refused: %s", session.channel_id, refused.reason)
    await app.pool.audit.append(task.id, "callback_refused", reason=refused.reason,
                                number=refused.number[-20:])
    await session.play([prompt_for(refused.reason)])


async def _ask(session: Session, media: list[str]) -> str | None:
    session.clear_digits()
    key = await session.play(media, interruptible=True)
    if key:
        return session.digits.pop(0)
    return await session.read_key(KEY_WAIT)
