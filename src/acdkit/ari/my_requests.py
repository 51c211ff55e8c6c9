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
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from acdkit.ari.callback_offer import choose_time, confirm_by_message
from acdkit.ari.session import Session
from acdkit.ari.voice_request import record
from acdkit.core.errors import AcdError, Refused
from acdkit.core.pins import PinOutcome
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
from acdkit.policies import pin_policy
from acdkit.store import self_service as actions
from acdkit.store.pins import verify_customer_pin
from acdkit.store.requests import RequestStore

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)
KEY_WAIT = 6.0


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


async def before_menu(app: StasisApp, session: Session, call: Task) -> Outcome:
    """Offer the caller what it asked for earlier; ``call`` is this call's task (not stored
    yet) that option 4 turns into the callback's place in line."""
    number = caller_key(session.caller_number, app.number_policy)
    if number is None:
        return Stay()
    requests = RequestStore(app.pool, app.settings.requests)
    items = await actions.items_for(app.callbacks, requests, number)
    if not items:
        return Stay()
    log.info("channel %s: %s has %d pending item(s)", session.channel_id, number, len(items))
    pin = _Pin(app, session, number, await app.ratings.pin_hash(number))
    for item in items:
        action = await _ask(app, session, item)
        if action is Action.NEXT:
            continue
        if action is Action.MENU:
            return Stay()
        if needs_pin(action, pin.hash is not None) and not await pin.ok():
            return await _bye(app, session, ["sound:acdkit/goodbye"])
        outcome = await _act(app, session, item, action, call, requests)
        if outcome is not None:
            return outcome
    return Stay()


async def _ask(app: StasisApp, session: Session, item: Item) -> Action:
    tz = ZoneInfo(app.settings.center.timezone)
    for _ in range(2):
        session.clear_digits()
        now = datetime.fromtimestamp(app.clock.now(), tz)
        key = await session.play(announce(item, now), interruptible=True)
        key = session.digits.pop(0) if key else await session.read_key(KEY_WAIT)
        action = choose(item, key)
        if action is not None:
            log.info("channel %s: %s %s: key %s = %s", session.channel_id, item.kind,
                     item.task_id, key, action)
            return action
        await session.play(["sound:acdkit/invalid"])
    return Action.NEXT


async def _act(app: StasisApp, session: Session, item: Item, action: Action, call: Task,
               requests: RequestStore) -> Outcome | None:
    """Do ``action``; the outcome, or None to go on with the next item."""
    channel = session.channel_name or session.channel_id
    now = app.clock.now()
    try:
        if action is Action.KEEP:
            await actions.keep(app.callbacks, item.task_id, now, channel)
        elif action is Action.CANCEL:
            await actions.cancel(app.callbacks, item.task_id, now, channel)
        elif action is Action.MOVE:
            return await _move(app, session, item, channel)
        elif action is Action.LIVE:
            live = await actions.go_live(app.callbacks, item.task_id, call, now, channel)
            await session.play(done_prompt(action))
            return Live(live)
        elif action is Action.ADD:
            return await _add(app, session, item, requests, channel)
    except Refused as refused:
        log.info("channel %s: %s refused: %s", session.channel_id, action, refused)
        await session.play(["sound:acdkit/ss-too-late"])
        return None
    return await _bye(app, session, done_prompt(action))


async def _move(app: StasisApp, session: Session, item: Item, channel: str) -> Outcome | None:
    """Key a new HHMM (read back and confirmed as when booking) and move the callback."""
    due_at = await choose_time(app.offer, session)
    if due_at is None:
        return None
    moved = await actions.move(app.callbacks, item.task_id, due_at, app.clock.now(), channel)
    confirm_by_message(app.offer, moved)
    return await _bye(app, session, ["sound:acdkit/ss-moved", f"digits:{item.ref}",
                                     "sound:acdkit/goodbye"])


async def _add(app: StasisApp, session: Session, item: Item, requests: RequestStore,
               channel: str) -> Outcome:
    """Record an addendum after the beep and attach it to the request's work order."""
    limits = app.settings.requests
    name = f"vr-{item.task_id}-add-{int(app.clock.now())}"
    await session.play(["sound:acdkit/vr-prompt"])
    if not await record(app.control, session, name, max_seconds=limits.max_seconds,
                        max_silence=limits.max_silence):
        return await _bye(app, session, ["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
    audio = await app.control.download_recording(name)
    try:
        if not audio:
            raise Refused("nothing was recorded")
        await actions.add_to_request(requests, item.task_id, name, audio, "wav",
                                     app.clock.now(), channel)
    except AcdError as exc:
        log.info("channel %s: addendum to %s not kept: %s", session.channel_id,
                 item.task_id, exc)
        return await _bye(app, session, ["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
    return await _bye(app, session, done_prompt(Action.ADD))


async def _bye(app: StasisApp, session: Session, media: list[str]) -> Left:
    await session.play(media)
    await app.control.hangup(session.channel_id)
    return Left()


@dataclass
class _Pin:
    """The number's PIN (``acdkit ratings pin``), asked once per call before a change."""

    app: StasisApp
    session: Session
    number: str
    hash: str | None
    checked: bool = False

    async def ok(self) -> bool:
        if self.hash is None or self.checked:
            return True
        timeout = self.app.settings.ratings.key_timeout
        for _ in range(2):
            self.session.clear_digits()
            await self.session.play(["sound:acdkit/ss-pin-enter"], interruptible=True)
            keyed = await self.session.read_digits(max_digits=12, timeout=timeout)
            checked = await verify_customer_pin(self.app.pool, self.number, keyed, self.hash,
                                                pin_policy(self.app.settings))
            if checked is PinOutcome.OK:
                self.checked = True
                return True
            log.info("channel %s: %s PIN", self.session.channel_id, checked.value)
            await self.session.play(["sound:acdkit/rate-pin-wrong"])
            if checked is PinOutcome.LOCKED:
                break
        return False
