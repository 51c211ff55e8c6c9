"""The inbound flow: IVR → a task in the pool → the caller holds with music and hears its
position until the connector bridges it to an agent; a hang-up ends the task correctly."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from acdkit.ari import callback_offer, my_requests
from acdkit.ari.choose_agent import rating_inputs
from acdkit.ari.ivr import choose_skill
from acdkit.ari.session import ChannelGone, Session
from acdkit.core import overflow
from acdkit.core.errors import InvalidTransition, NotFound
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.dialplan_vars import FALLBACK_CONTEXT
from acdkit.store import outbound

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)


def new_task_id() -> str:
    return uuid.uuid4().hex[:16]


async def serve_caller(app: StasisApp, session: Session, entry: str) -> None:
    """Run one inbound caller from answer to hang-up."""
    await app.control.answer(session.channel_id)
    if await _called_again(app, session, entry):
        return
    skill = await choose_skill(session, app.menu(entry))
    # the chosen agent, the customer's rating
    inputs = await rating_inputs(app.choose_agent, session, skill)
    now = app.clock.now()
    task = Task(id=new_task_id(), kind=TaskKind.CALL, skill=skill, created_at=now,
                enqueued_at=now, number=session.caller_number, source=f"ivr:{entry}",
                channel_id=session.channel_id, **inputs)
    await serve_queued(app, session, task)


async def _called_again(app: StasisApp, session: Session, entry: str) -> bool:
    """A caller with a pending callback or open request hears it first (ari/my_requests.py);
    True when that ended the call here (done, or it became the callback's place in line)."""
    now = app.clock.now()
    call = Task(id=new_task_id(), kind=TaskKind.CALL, skill=app.menu(entry).default,
                created_at=now, enqueued_at=now, number=session.caller_number,
                source=f"ivr:{entry}", channel_id=session.channel_id)
    outcome = await my_requests.before_menu(app.my_requests, session, call)
    if isinstance(outcome, my_requests.Live):
        await serve_queued(app, session, outcome.task)
    return not isinstance(outcome, my_requests.Stay)


async def serve_queued(app: StasisApp, session: Session, task: Task, *,
                       adopted: bool = False) -> None:
    """Hold the caller of ``task`` until served, then until it hangs up. A new task is put
    on hold and in the pool; an ``adopted`` one (its flow died with an earlier serve:
    ari/reconcile.py) already sits in the holding bridge with its place in line, or in its
    conversation (the call the reconciler opened, bridge and agent leg set)."""
    call = app.calls.get(task.id) or app.calls.open(task.id, session)
    try:
        if not adopted:
            await app.hold(task.skill, session.channel_id)
            await app.pool.add_task(task)
            log.info("task %s queued for %s (caller %s)", task.id, task.skill,
                     session.caller_number)
            await outbound.on_call_in(app.pool, app.number_policy, session.caller_number,
                                      task.created_at)
        await _wait_for_agent(app, session, task)
        # The agent's hang-up hangs the caller up too (after the survey: ari/survey.py).
        await session.hung_up.wait()
    except ChannelGone:
        pass
    finally:
        await app.connector.customer_left(call)
        app.calls.close(task.id)
        await _missed(app, task.id)


async def _missed(app: StasisApp, task_id: str) -> None:
    """A caller who hung up while queued becomes an outbound follow-up (store/outbound.py)."""
    settings = app.settings.outbound
    ended = await app.pool.get_task(task_id)
    if settings.missed_calls and ended is not None:
        await outbound.on_missed_call(app.pool, app.number_policy, ended, app.clock.now(),
                                      after=settings.missed_after,
                                      skill=settings.follow_up_skill)


async def _wait_for_agent(app: StasisApp, session: Session, task: Task) -> None:
    """Hold until the connector bridges the caller: announce the position every
    ``queue.announce_every`` seconds and make the overflow offer when the rules say so.
    While an agent is being rung the caller only listens; if that agent misses the call, the
    task is back in line and the announcements go on."""
    call = app.calls.get(task.id)
    rules = callback_offer.rule(app.settings.overflow)
    last_announce = last_offer = None
    tick = min(1.0, app.settings.queue.announce_every)
    while call is not None and call.bridge_id is None:
        await session.next_event(tick)
        now = app.clock.now()
        if call.taken.is_set() or call.bridge_id is not None:
            continue
        if now - task.enqueued_at >= app.settings.queue.max_wait:
            await _past_max_wait(app, session, task)
            continue
        # Read the queue (position, agents) only when an offer or an announcement is due:
        # this loop ticks every second for every waiting caller.
        offer_due = now - task.enqueued_at >= rules.first_after and (
            last_offer is None or now - last_offer >= rules.repeat_every)
        announce_due = last_announce is None or \
            now - last_announce >= app.settings.queue.announce_every
        if not (offer_due or announce_due):
            continue
        view = await callback_offer.queue_view(app.offer, task, now)
        if view is None:
            continue
        reason = overflow.offer_reason(rules, view, last_offer, now)
        if reason is not None:
            last_offer = now
            if await callback_offer.offer(app.offer, session, task, reason):
                raise ChannelGone(session.channel_id)
            continue
        if last_announce is None or now - last_announce >= app.settings.queue.announce_every:
            if last_announce is not None or view.waited >= app.settings.queue.announce_every:
                await _announce(app, session, view.position)
            last_announce = now


async def _past_max_wait(app: StasisApp, session: Session, task: Task) -> None:
    """The caller waited ``queue.max_wait``: its task expires and it continues in the
    fallback context (a plain queue); raises ``ChannelGone`` once it left our app. A task
    an agent took meanwhile is left to the connector."""
    current = await app.pool.get_task(task.id)
    if current is None or current.state is not TaskState.QUEUED:
        return
    try:
        await app.pool.move_task(task.id, TaskEvent.EXPIRE, app.clock.now(), outcome="max_wait")
    except (InvalidTransition, NotFound):
        return
    log.info("task %s waited %.0f s: expired, caller to %s", task.id,
             app.clock.now() - task.enqueued_at, FALLBACK_CONTEXT)
    await app.control.remove_from_bridge(app.hold_bridge_id(task.skill), session.channel_id)
    await app.control.continue_in_dialplan(session.channel_id, FALLBACK_CONTEXT, "s", 1)
    raise ChannelGone(session.channel_id)


async def _announce(app: StasisApp, session: Session, position: int) -> None:
    media = (["sound:queue-youarenext"] if position == 0 else
             ["sound:queue-thereare", f"number:{position + 1}", "sound:queue-callswaiting"])
    # Played on the channel while it sits in the holding bridge: only this caller hears it.
    await app.control.play(session.channel_id, media)
