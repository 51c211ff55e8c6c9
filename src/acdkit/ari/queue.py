"""The inbound flow: IVR → a task in the pool → the caller holds with music and hears its
position until the connector bridges it to an agent; a hang-up ends the task correctly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

from acdkit.ari import callback_offer, my_requests
from acdkit.ari.agents import AgentConnector
from acdkit.ari.bridges import Bridges
from acdkit.ari.callback_offer import OverflowOffer
from acdkit.ari.calls import Call, Calls
from acdkit.ari.choose_agent import ChooseAgent, rating_inputs
from acdkit.ari.control import AriControl
from acdkit.ari.ivr import choose_skill
from acdkit.ari.my_requests import MyRequests
from acdkit.ari.session import ChannelGone, Session
from acdkit.config import OutboundSettings, OverflowSettings, QueueSettings
from acdkit.core import holding, ivr, overflow
from acdkit.core.errors import AriRequestFailed, InvalidTransition, NotFound
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.dialplan_vars import FALLBACK_CONTEXT
from acdkit.ports import Clock
from acdkit.store import outbound
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queueing:
    """What the inbound flow uses, from the IVR to the end of the call."""

    control: AriControl
    pool: Pool
    clock: Clock
    numbers: NumberPolicy
    calls: Calls
    bridges: Bridges  # the skills' holding bridges
    connector: AgentConnector  # ends the call when the caller leaves
    menus: Mapping[str, ivr.Menu]  # the IVR of each entry ([ivr.*])
    queue: QueueSettings  # [queue]: announcements, the longest wait
    overflow: OverflowSettings  # [overflow]: when to offer
    outbound: OutboundSettings  # [outbound]: a missed call's follow-up
    offer: OverflowOffer
    my_requests: MyRequests
    choose_agent: ChooseAgent
    node: str = ""  # this serve's node: written on each caller's task


def new_task_id() -> str:
    return uuid.uuid4().hex[:16]


def menu_of(menus: Mapping[str, ivr.Menu], entry: str) -> ivr.Menu:
    """The IVR of ``entry``: its own, else ``main``'s, else an empty one."""
    return menus.get(entry) or menus.get("main") or ivr.Menu(entry=entry)


async def serve_caller(ctx: Queueing, session: Session, entry: str) -> None:
    """Run one inbound caller from answer to hang-up."""
    await ctx.control.answer(session.channel_id)
    if await _called_again(ctx, session, entry):
        return
    skill = await choose_skill(session, menu_of(ctx.menus, entry))
    # the chosen agent, the customer's rating
    inputs = await rating_inputs(ctx.choose_agent, session, skill)
    now = ctx.clock.now()
    task = Task(id=new_task_id(), kind=TaskKind.CALL, skill=skill, created_at=now,
                enqueued_at=now, number=session.caller_number, source=f"ivr:{entry}",
                channel_id=session.channel_id, node=ctx.node, **inputs)
    await serve_queued(ctx, session, task)


async def _called_again(ctx: Queueing, session: Session, entry: str) -> bool:
    """A caller with a pending callback or open request hears it first (ari/my_requests.py);
    True when that ended the call here (done, or it became the callback's place in line)."""
    now = ctx.clock.now()
    call = Task(id=new_task_id(), kind=TaskKind.CALL, skill=menu_of(ctx.menus, entry).default,
                created_at=now, enqueued_at=now, number=session.caller_number,
                source=f"ivr:{entry}", channel_id=session.channel_id, node=ctx.node)
    outcome = await my_requests.before_menu(ctx.my_requests, session, call)
    if isinstance(outcome, my_requests.Live):
        await serve_queued(ctx, session, outcome.task)
    return not isinstance(outcome, my_requests.Stay)


async def serve_queued(ctx: Queueing, session: Session, task: Task, *,
                       adopted: bool = False) -> None:
    """Hold the caller of ``task`` until served, then until it hangs up. A new task is put
    on hold and in the pool; an ``adopted`` one (its flow died with an earlier serve:
    ari/reconcile.py) already sits in the holding bridge with its place in line, or in its
    conversation (the call the reconciler opened, bridge and agent leg set)."""
    call = ctx.calls.get(task.id) or ctx.calls.open(task.id, session)
    try:
        if not adopted:
            await ctx.bridges.hold(task.skill, session.channel_id)
            await ctx.pool.add_task(task)
            log.info("task %s queued for %s (caller %s, channel %s)", task.id, task.skill,
                     session.caller_number, session.channel_id)
            await outbound.on_call_in(ctx.pool, ctx.numbers, session.caller_number,
                                      task.created_at)
        await _wait_for_agent(ctx, session, task)
        # The agent's hang-up hangs the caller up too (after the survey: ari/survey.py).
        await session.hung_up.wait()
    except ChannelGone:
        pass
    finally:
        served = await ctx.connector.customer_left(call)
        ctx.calls.close(task.id)
        if not served:  # a served call is no missed call: no second read of its task
            await _missed(ctx, task.id)


async def _missed(ctx: Queueing, task_id: str) -> None:
    """A caller who hung up while queued becomes an outbound follow-up (store/outbound.py)."""
    settings = ctx.outbound
    ended = await ctx.pool.get_task(task_id)
    if settings.missed_calls and ended is not None:
        await outbound.on_missed_call(ctx.pool, ctx.numbers, ended, ctx.clock.now(),
                                      after=settings.missed_after,
                                      skill=settings.follow_up_skill)


async def _wait_for_agent(ctx: Queueing, session: Session, task: Task) -> None:
    """Hold until the connector bridges the caller: announce the position every
    ``queue.announce_every`` seconds and make the overflow offer when the rules say so.
    Between those moments the caller sleeps until the next one or its channel's next event
    (core/holding.py): no tick per waiting caller. While an agent is being rung the caller
    only listens; if that agent misses the call, the task is back in line and the
    announcements go on."""
    call = ctx.calls.get(task.id)
    rules = callback_offer.rule(ctx.overflow)
    timers = holding.timers(ctx.queue.announce_every, ctx.queue.max_wait, rules)
    held = holding.Held(task.enqueued_at)
    while call is not None and call.bridge_id is None:
        if call.taken.is_set():  # an agent is being rung; taken ends without an event
            await session.next_event(timers.retry)
            continue
        now = ctx.clock.now()
        due = holding.due(timers, held, now)
        if due:
            held = await _attend(ctx, session, call, task, rules,
                                 replace(held, looked_at=now), due, now)
        else:
            await _sleep(session, call, holding.next_wake(timers, held) - now)


async def _sleep(session: Session, call: Call, timeout: float) -> None:
    """Until the caller's next event, ``timeout``, or an agent starting to be connected: the
    loop then looks every ``timers.retry`` and leaves in time for the conversation's own
    readers of the caller's keys (the survey after it), which it must not take."""
    event = asyncio.ensure_future(session.next_event(timeout))
    taken = asyncio.ensure_future(call.taken.wait())
    try:
        await asyncio.wait({event, taken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in (event, taken):
            waiting.cancel()
    if event.done() and not event.cancelled():
        event.result()  # ChannelGone when the caller left


async def _attend(ctx: Queueing, session: Session, call: Call, task: Task,
                  rules: overflow.OverflowRule, held: holding.Held, due: holding.Due,
                  now: float) -> holding.Held:
    """Do what is ``due`` at ``now``: end the longest wait, make the offer or announce the
    position; return what happened, for the next wake."""
    if due.expire:
        await _past_max_wait(ctx, session, task)
        return held
    view = await callback_offer.queue_view(ctx.offer, task, now)
    if view is None:
        await _requeue_if_lost(ctx, task)
        return held  # no longer in line: an agent is being connected
    reason = overflow.offer_reason(rules, view, held.last_offer, now) if due.offer else None
    if reason is not None:
        if await _offer_unless_taken(ctx, session, call, task, reason):
            raise ChannelGone(session.channel_id)
        return replace(held, last_offer=now)
    if due.announce:
        # One at a time: a position queued behind the last one would keep the caller from
        # its agent's bridge until both had played (ari/session.py ``start_playing``).
        if not session.playing:
            await _announce(session, view.position)
        return replace(held, last_announce=now)
    return held


async def _offer_unless_taken(ctx: Queueing, session: Session, call: Call, task: Task,
                              reason: str) -> bool:
    """The overflow offer (True: the caller left with a callback booked), given up once an
    agent is being connected: the caller is the agent's then, and its prompt is stopped (no
    "press 1" left unheeded if that agent misses the call). A booking and a claim exclude
    each other by the task's compare-and-set."""
    offering = asyncio.ensure_future(callback_offer.offer(ctx.offer, session, task, reason))
    taken = asyncio.ensure_future(call.taken.wait())
    try:
        await asyncio.wait({offering, taken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        taken.cancel()
        if not offering.done():
            offering.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await offering
    if offering.cancelled():
        log.info("task %s: offer given up, an agent is being connected", task.id)
        try:
            await session.stop_playing()
        except AriRequestFailed as exc:  # the connect stops it again before the bridge
            log.warning("task %s: offer prompt not stopped: %s", task.id, exc)
        return False
    return offering.result()


async def _past_max_wait(ctx: Queueing, session: Session, task: Task) -> None:
    """The caller waited ``queue.max_wait``: its task expires and it continues in the
    fallback context (a plain queue); raises ``ChannelGone`` once it left our app. A task
    an agent took meanwhile is left to the connector."""
    current = await ctx.pool.get_task(task.id)
    if current is not None and current.state is not TaskState.QUEUED:
        return
    try:
        if current is not None:
            await ctx.pool.move_task(task.id, TaskEvent.EXPIRE, ctx.clock.now(),
                                     outcome="max_wait")
    except (InvalidTransition, NotFound):
        return
    log.info("task %s waited %.0f s: expired, caller to %s", task.id,
             ctx.clock.now() - task.enqueued_at, FALLBACK_CONTEXT)
    await session.stop_playing()  # the fallback goes on at once, not after the position
    await ctx.control.remove_from_bridge(ctx.bridges.hold_id(task.skill), session.channel_id)
    await ctx.control.continue_in_dialplan(session.channel_id, FALLBACK_CONTEXT, "s", 1)
    raise ChannelGone(session.channel_id)


async def _requeue_if_lost(ctx: Queueing, task: Task) -> None:
    """The caller is here but Redis no longer has its task: a Redis failover took the
    unconfirmed write along (docs/redis-ha.md). Put it in line again with its place, so the
    caller is served instead of waiting for nothing."""
    if await ctx.pool.get_task(task.id) is not None:
        return
    log.warning("task %s (caller %s) was lost by Redis: queued again with its place",
                task.id, task.number)
    await ctx.pool.add_task(task)


async def _announce(session: Session, position: int) -> None:
    media = (["sound:queue-youarenext"] if position == 0 else
             ["sound:queue-thereare", f"number:{position + 1}", "sound:queue-callswaiting"])
    # Played on the channel while it sits in the holding bridge: only this caller hears it.
    # The connector stops it before it bridges the caller (ari/agents.py ``bridge``).
    await session.start_playing(media)
