"""Calling again, dialplan mode: the ``my-requests`` FastAGI route, before ``Queue()``
(``AGI(agi://acdkit:4573/my-requests?queue=sales)``; docs/self-service.md).

The same keys and prompts as the Stasis flow (ari/my_requests.py, core/self_service.py).
``ACDKIT_STATUS`` after it:

    menu   nothing pending, an anonymous caller, or the caller chose the menu: go on
    done   kept, cancelled, moved or added to: the caller heard goodbye; hang up
    queue  4 (agent now): the callback is cancelled and the caller enters the queue at once
           with ``ACDKIT_PRIORITY`` (``agi.callback_priority``), ahead of callers who came
           after it booked (Queue() has no enqueue time to keep: a priority is its place)
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from acdkit import dialplan_vars as dv
from acdkit.agi.context import RouteContext
from acdkit.agi.offer import Offer
from acdkit.agi.protocol import AgiRequest
from acdkit.agi.session import AgiChannel
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
from acdkit.core.tasks import Task, TaskKind
from acdkit.policies import pin_policy
from acdkit.store import self_service as actions
from acdkit.store.pins import verify_customer_pin
from acdkit.store.requests import RequestStore

log = logging.getLogger(__name__)
KEY_WAIT = 6.0
RECORDINGS = "/var/spool/asterisk/recording"  # as agi/routes.py: ARI serves them


async def my_requests(ctx: RouteContext, agi: AgiChannel, request: AgiRequest) -> None:
    """Offer the caller its pending callback or open request; see the module's statuses."""
    status = await _offer(ctx, agi, request)
    await agi.set_variable(dv.STATUS, status)


async def _offer(ctx: RouteContext, agi: AgiChannel, request: AgiRequest) -> str:
    number = caller_key(request.caller_number, ctx.numbers)
    if number is None:
        return dv.STATUS_MENU
    requests = RequestStore(ctx.pool, ctx.settings.requests)
    items = await actions.items_for(ctx.callbacks, requests, number)
    pin_hash = await ctx.ratings.pin_hash(number) if items else None
    pin_checked = False
    for item in items:
        action = await _ask(ctx, agi, item)
        if action is Action.NEXT:
            continue
        if action is Action.MENU:
            return dv.STATUS_MENU
        if needs_pin(action, pin_hash is not None) and not pin_checked:
            if not await _pin_ok(ctx, agi, number, pin_hash or ""):
                await agi.play(["sound:acdkit/goodbye"])
                return dv.STATUS_DONE
            pin_checked = True
        status = await _act(ctx, agi, request, item, action, requests)
        if status is not None:
            return status
    return dv.STATUS_MENU


async def _ask(ctx: RouteContext, agi: AgiChannel, item: Item) -> Action:
    tz = ZoneInfo(ctx.settings.center.timezone)
    for _ in range(2):
        now = datetime.fromtimestamp(ctx.clock.now(), tz)
        action = choose(item, await agi.ask(announce(item, now), KEY_WAIT))
        if action is not None:
            return action
        await agi.play(["sound:acdkit/invalid"])
    return Action.NEXT


async def _act(ctx: RouteContext, agi: AgiChannel, request: AgiRequest, item: Item,
               action: Action, requests: RequestStore) -> str | None:
    """Do ``action``; the status to leave, or None to go on with the next item."""
    channel = request.channel or request.unique_id
    now = ctx.clock.now()
    try:
        if action is Action.KEEP:
            await actions.keep(ctx.callbacks, item.task_id, now, channel)
        elif action is Action.CANCEL:
            await actions.cancel(ctx.callbacks, item.task_id, now, channel)
        elif action is Action.MOVE:
            due_at = await Offer(ctx.settings, ctx.numbers, ctx.callbacks,
                                 ctx.clock).choose_time(agi)
            if due_at is None:
                return None
            await actions.move(ctx.callbacks, item.task_id, due_at, now, channel)
            await agi.play(["sound:acdkit/ss-moved", f"digits:{item.ref}",
                            "sound:acdkit/goodbye"])
            return dv.STATUS_DONE
        elif action is Action.LIVE:
            return await _live(ctx, agi, item, now, channel)
        elif action is Action.ADD:
            return await _add(ctx, agi, item, requests, channel)
    except Refused as refused:
        log.info("AGI my-requests: %s refused: %s", action, refused)
        await agi.play(["sound:acdkit/ss-too-late"])
        return None
    await agi.play(done_prompt(action))
    return dv.STATUS_DONE


async def _live(ctx: RouteContext, agi: AgiChannel, item: Item, now: float,
                channel: str) -> str:
    call = Task(id=uuid.uuid4().hex[:16], kind=TaskKind.CALL, skill="", created_at=now,
                enqueued_at=now)
    await actions.go_live(ctx.callbacks, item.task_id, call, now, channel)
    await agi.set_variable(dv.PRIORITY, str(ctx.settings.agi.callback_priority))
    await agi.play(done_prompt(Action.LIVE))
    return dv.STATUS_QUEUE


async def _add(ctx: RouteContext, agi: AgiChannel, item: Item, requests: RequestStore,
               channel: str) -> str:
    limits = ctx.settings.requests
    name = f"acdkit-vr-{item.task_id}-add-{int(ctx.clock.now())}"
    audio = None
    if ctx.fetch is not None:
        await agi.play(["sound:acdkit/vr-prompt"])
        await agi.record(f"{RECORDINGS}/{name}", "wav", limits.max_seconds, limits.max_silence)
        audio = await ctx.fetch(name)
    try:
        if not audio:
            raise Refused("nothing was recorded (or no ARI to fetch it)")
        await actions.add_to_request(requests, item.task_id, name, audio, "wav",
                                     ctx.clock.now(), channel)
    except AcdError as exc:
        log.info("AGI my-requests: addendum to %s not kept: %s", item.task_id, exc)
        await agi.play(["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
        return dv.STATUS_DONE
    await agi.play(done_prompt(Action.ADD))
    return dv.STATUS_DONE


async def _pin_ok(ctx: RouteContext, agi: AgiChannel, number: str, pin_hash: str) -> bool:
    """The number's PIN (``acdkit ratings pin``), two tries, counted per number."""
    for _ in range(2):
        keyed = await agi.read_digits("acdkit/ss-pin-enter", 12,
                                      ctx.settings.ratings.key_timeout)
        checked = await verify_customer_pin(ctx.pool, number, keyed, pin_hash,
                                            pin_policy(ctx.settings))
        if checked is PinOutcome.OK:
            return True
        await agi.play(["sound:acdkit/rate-pin-wrong"])
        if checked is PinOutcome.LOCKED:
            break
    return False
