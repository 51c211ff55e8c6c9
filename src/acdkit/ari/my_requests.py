"""Calling again, Stasis mode: before the IVR menu a caller whose number has a pending
callback or an open voice request hears it and may keep, cancel or move the callback,
speak with an agent now (the callback becomes this call, with its place in line), or add
to the request (docs/self-service.md; the keys are core/self_service.py's).

``before_menu`` runs from the inbound flow (ari/queue.py) once the call is answered. It
returns ``Stay`` (on to the menu), ``Left`` (the caller is done: hung up by us), or a
``Live`` call task that takes the callback's place and goes to the queue. A withheld or
anonymous number, or one with nothing pending, goes to the menu at once and hears nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from acdkit.ari.callback_offer import OverflowOffer, choose_time, confirm_by_message
from acdkit.ari.control import AriControl
from acdkit.ari.session import Session
from acdkit.ari.voice_request import record
from acdkit.config import CenterSettings, RequestSettings
from acdkit.core.errors import AcdError, Refused
from acdkit.core.numbers import NumberPolicy
from acdkit.core.pins import PinOutcome, PinPolicy
from acdkit.core.self_service import (
    Action,
    Item,
    announce,
    caller_key,
    choose,
    done_prompt,
    needs_pin,
)
from acdkit.core.tasks import Task
from acdkit.ports import Clock
from acdkit.store import self_service as actions
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pins import verify_customer_pin
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore
from acdkit.store.requests import RequestStore

log = logging.getLogger(__name__)
KEY_WAIT = 6.0


@dataclass(frozen=True)
class MyRequests:
    """What a caller's pending callbacks and requests, offered before the menu, use."""

    control: AriControl
    pool: Pool
    clock: Clock
    callbacks: CallbackStore
    ratings: RatingStore  # the number's PIN
    numbers: NumberPolicy
    center: CenterSettings  # [center]: the timezone
    requests: RequestSettings  # [requests]
    key_timeout: float  # ratings.key_timeout: to key the PIN
    pins: PinPolicy
    offer: OverflowOffer  # a new time for a callback, keyed and confirmed as when booking


@dataclass(frozen=True)
class Stay:
    """On to the menu."""


@dataclass(frozen=True)
class Left:
    """The caller is done and was hung up."""


@dataclass(frozen=True)
class Live:
    """The callback became this call: queue ``task`` (its place kept)."""

    task: Task


Outcome = Stay | Left | Live


async def before_menu(ctx: MyRequests, session: Session, call: Task) -> Outcome:
    """Offer the caller what it asked for earlier; ``call`` is this call's task (not stored
    yet) that option 4 turns into the callback's place in line."""
    number = caller_key(session.caller_number, ctx.numbers)
    if number is None:
        return Stay()
    requests = RequestStore(ctx.pool, ctx.requests)
    items = await actions.items_for(ctx.callbacks, requests, number)
    if not items:
        return Stay()
    log.info("channel %s: %s has %d pending item(s)", session.channel_id, number, len(items))
    pin = _Pin(ctx, session, number, await ctx.ratings.pin_hash(number))
    for item in items:
        action = await _ask(ctx, session, item)
        if action is Action.NEXT:
            continue
        if action is Action.MENU:
            return Stay()
        if needs_pin(action, pin.hash is not None) and not await pin.ok():
            return await _bye(ctx, session, ["sound:acdkit/goodbye"])
        outcome = await _act(ctx, session, item, action, call, requests)
        if outcome is not None:
            return outcome
    return Stay()


async def _ask(ctx: MyRequests, session: Session, item: Item) -> Action:
    tz = ZoneInfo(ctx.center.timezone)
    for _ in range(2):
        session.clear_digits()
        now = datetime.fromtimestamp(ctx.clock.now(), tz)
        key = await session.play(announce(item, now), interruptible=True)
        key = session.digits.pop(0) if key else await session.read_key(KEY_WAIT)
        action = choose(item, key)
        if action is not None:
            log.info("channel %s: %s %s: key %s = %s", session.channel_id, item.kind,
                     item.task_id, key, action)
            return action
        await session.play(["sound:acdkit/invalid"])
    return Action.NEXT


async def _act(ctx: MyRequests, session: Session, item: Item, action: Action, call: Task,
               requests: RequestStore) -> Outcome | None:
    """Do ``action``; the outcome, or None to go on with the next item."""
    channel = session.channel_name or session.channel_id
    now = ctx.clock.now()
    try:
        if action is Action.KEEP:
            await actions.keep(ctx.callbacks, item.task_id, now, channel)
        elif action is Action.CANCEL:
            await actions.cancel(ctx.callbacks, item.task_id, now, channel)
        elif action is Action.MOVE:
            return await _move(ctx, session, item, channel)
        elif action is Action.LIVE:
            live = await actions.go_live(ctx.callbacks, item.task_id, call, now, channel)
            await session.play(done_prompt(action))
            return Live(live)
        elif action is Action.ADD:
            return await _add(ctx, session, item, requests, channel)
    except Refused as refused:
        log.info("channel %s: %s refused: %s", session.channel_id, action, refused)
        await session.play(["sound:acdkit/ss-too-late"])
        return None
    return await _bye(ctx, session, done_prompt(action))


async def _move(ctx: MyRequests, session: Session, item: Item, channel: str) -> Outcome | None:
    """Key a new HHMM (read back and confirmed as when booking) and move the callback."""
    due_at = await choose_time(ctx.offer, session)
    if due_at is None:
        return None
    moved = await actions.move(ctx.callbacks, item.task_id, due_at, ctx.clock.now(), channel)
    confirm_by_message(ctx.offer, moved)
    return await _bye(ctx, session, ["sound:acdkit/ss-moved", f"digits:{item.ref}",
                                     "sound:acdkit/goodbye"])


async def _add(ctx: MyRequests, session: Session, item: Item, requests: RequestStore,
               channel: str) -> Outcome:
    """Record an addendum after the beep and attach it to the request's work order."""
    limits = ctx.requests
    name = f"vr-{item.task_id}-add-{int(ctx.clock.now())}"
    await session.play(["sound:acdkit/vr-prompt"])
    if not await record(ctx.control, session, name, max_seconds=limits.max_seconds,
                        max_silence=limits.max_silence):
        return await _bye(ctx, session, ["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
    audio = await ctx.control.download_recording(name)
    try:
        if not audio:
            raise Refused("nothing was recorded")
        await actions.add_to_request(requests, item.task_id, name, audio, "wav",
                                     ctx.clock.now(), channel)
    except AcdError as exc:
        log.info("channel %s: addendum to %s not kept: %s", session.channel_id,
                 item.task_id, exc)
        return await _bye(ctx, session, ["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
    return await _bye(ctx, session, done_prompt(Action.ADD))


async def _bye(ctx: MyRequests, session: Session, media: list[str]) -> Left:
    await session.play(media)
    await ctx.control.hangup(session.channel_id)
    return Left()


@dataclass
class _Pin:
    """The number's PIN (``acdkit ratings pin``), asked once per call before a change."""

    ctx: MyRequests
    session: Session
    number: str
    hash: str | None
    checked: bool = False

    async def ok(self) -> bool:
        if self.hash is None or self.checked:
            return True
        timeout = self.ctx.key_timeout
        for _ in range(2):
            self.session.clear_digits()
            await self.session.play(["sound:acdkit/ss-pin-enter"], interruptible=True)
            keyed = await self.session.read_digits(max_digits=12, timeout=timeout)
            checked = await verify_customer_pin(self.ctx.pool, self.number, keyed, self.hash,
                                                self.ctx.pins)
            if checked is PinOutcome.OK:
                self.checked = True
                return True
            log.info("channel %s: %s PIN", self.session.channel_id, checked.value)
            await self.session.play(["sound:acdkit/rate-pin-wrong"])
            if checked is PinOutcome.LOCKED:
                break
        return False
