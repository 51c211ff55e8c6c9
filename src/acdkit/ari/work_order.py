"""A voice request handed to an idle agent: the agent's phone rings, the agent hears the
reference, the transcript (espeak-ng through ari/media.py) and the caller's recording, then
presses 1 to record a spoken reply after a beep (``#`` ends it), 2 to hear it all again, or
hangs up to reply later by text (``acdkit requests reply REF --text ...``).

A spoken reply is fetched over ARI, stored with the request and its delivery queued. The task
completes when the agent is done; an unanswered ring puts it back in the pool with its place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from acdkit.ari.agents import AgentConnector
from acdkit.ari.control import AriControl
from acdkit.ari.endings import Endings
from acdkit.ari.media import media
from acdkit.ari.session import ChannelGone, Session, Sessions
from acdkit.ari.voice_request import record
from acdkit.config import RequestSettings
from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.prompts import say_digits
from acdkit.core.tasks import Task, TaskEvent
from acdkit.ports import Clock, JobQueue
from acdkit.store.pool import Pool
from acdkit.store.requests import RequestStore, store_reply

log = logging.getLogger(__name__)
KEY_WAIT = 6.0


@dataclass(frozen=True)
class WorkOrders:
    """What handing a voice request to an agent uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    jobs: JobQueue  # a spoken reply's delivery
    sessions: Sessions
    connector: AgentConnector  # rings the agent, ends the task
    endings: Endings
    caller_id: str  # center.caller_id: what the agent's phone shows
    settings: RequestSettings  # [requests]


async def work_order(ctx: WorkOrders, agent: Agent, task: Task) -> None:
    """Offer voice request ``task`` to ``agent`` (reserved for it by the dispatcher)."""
    store = RequestStore(ctx.pool, ctx.settings)
    connector = ctx.connector
    leg = await connector.reach_agent(agent, task.id, ctx.caller_id,
                                      leg_id=f"vr-{task.id}-{int(ctx.clock.now())}-a")
    if leg is None:
        log.info("voice request %s: agent %s did not answer; back in line", task.id, agent.id)
        await connector.move_agent(agent.id, AgentEvent.NO_ANSWER)
        ctx.endings.after_wrap_up(agent.id)
        return
    now = ctx.clock.now()
    await ctx.pool.move_agent(agent.id, AgentEvent.ANSWER, now)
    await ctx.pool.move_task(task.id, TaskEvent.CONNECT, now)
    outcome = "agent heard the request"
    try:
        if await _listen_and_reply(ctx, store, agent, leg, task):
            outcome = "agent replied by voice"
    except ChannelGone:
        pass
    finally:
        if agent.id not in connector.lines:
            await ctx.control.hangup(leg.channel_id)
            ctx.sessions.close(leg.channel_id)
        await connector.end(task.id, agent.id, TaskEvent.COMPLETE, outcome)


async def _listen_and_reply(ctx: WorkOrders, store: RequestStore, agent: Agent, leg: Session,
                            task: Task) -> bool:
    for _ in range(3):
        request = await store.get(task.id)
        if request is None:
            await leg.play(["sound:acdkit/failure"])
            return False
        leg.clear_digits()
        # Any key stops the listening: an agent who heard enough answers at once.
        key = await leg.play(["sound:acdkit/vr-whisper", *say_digits(request.ref),
                              media(ctx.settings, request, "transcript"),
                              "sound:acdkit/vr-caller-said",
                              media(ctx.settings, request, "request"),
                              *addenda(request.addenda)],
                             interruptible=True)
        if key is None:
            key = await leg.play(["sound:acdkit/vr-agent-menu"], interruptible=True)
        key = leg.digits.pop(0) if key else await leg.read_key(KEY_WAIT)
        if key == "1":
            return await _record_reply(ctx, store, agent, leg, task)
        if key != "2":
            return False
    return False


def addenda(names: str) -> list[str]:
    """What the caller added later by calling again (store/self_service.py): Asterisk's
    stored recordings, each after the ``ss-addendum`` prompt."""
    return [m for name in names.split(",") if name
            for m in ("sound:acdkit/ss-addendum", f"recording:{name}")]


async def _record_reply(ctx: WorkOrders, store: RequestStore, agent: Agent, leg: Session,
                        task: Task) -> bool:
    name = f"vr-{task.id}-reply-{int(ctx.clock.now())}"
    line = ctx.connector.lines.get(agent.id)
    if line is not None:  # ARI does not record a bridged channel (409)
        await ctx.control.remove_from_bridge(line.bridge_id, leg.channel_id)
    try:
        done = await record(ctx.control, leg, name,
                            max_seconds=ctx.settings.max_reply_seconds,
                            max_silence=ctx.settings.max_silence)
    finally:
        if line is not None and not leg.gone:
            await ctx.control.add_to_bridge(line.bridge_id, [leg.channel_id])
    audio = await ctx.control.download_recording(name) if done else None
    if not audio:
        await leg.play(["sound:acdkit/vr-failed"])
        return False
    await store_reply(store, ctx.jobs, task.id, ctx.clock.now(), audio=audio, by=agent.id)
    await ctx.control.delete_recording(name)
    await leg.play(["sound:acdkit/vr-reply-saved"])
    return True
