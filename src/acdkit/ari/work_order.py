"""A voice request handed to an idle agent: the agent's phone rings, the agent hears the
reference, the transcript (espeak-ng through ari/media.py) and the caller's recording, then
presses 1 to record a spoken reply after a beep (``#`` ends it), 2 to hear it all again, or
hangs up to reply later by text (``acdkit requests reply REF --text ...``).

A spoken reply is fetched over ARI, stored with the request and its delivery queued. The task
completes when the agent is done; an unanswered ring puts it back in the pool with its place.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from acdkit.ari.media import media
from acdkit.ari.session import ChannelGone, Session
from acdkit.ari.voice_request import record
from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.prompts import say_digits
from acdkit.core.tasks import Task, TaskEvent
from acdkit.store.requests import RequestStore, store_reply

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)
KEY_WAIT = 6.0


async def work_order(app: StasisApp, agent: Agent, task: Task) -> None:
    """Offer voice request ``task`` to ``agent`` (reserved for it by the dispatcher)."""
    store = RequestStore(app.pool, app.settings.requests)
    connector = app.connector
    leg = await connector.reach_agent(agent, task.id, app.settings.center.caller_id,
                                      leg_id=f"vr-{task.id}-{int(app.clock.now())}-a")
    if leg is None:
        log.info("voice request %s: agent %s did not answer; back in line", task.id, agent.id)
        await connector.move_agent(agent.id, AgentEvent.NO_ANSWER)
        app.after_wrap_up(agent.id)
        return
    now = app.clock.now()
    await app.pool.move_agent(agent.id, AgentEvent.ANSWER, now)
    await app.pool.move_task(task.id, TaskEvent.CONNECT, now)
    outcome = "agent heard the request"
    try:
        if await _listen_and_reply(app, store, agent, leg, task):
            outcome = "agent replied by voice"
    except ChannelGone:
        pass
    finally:
        if agent.id not in connector.lines:
            await app.control.hangup(leg.channel_id)
            app.sessions.close(leg.channel_id)
        await connector.end(task.id, agent.id, TaskEvent.COMPLETE, outcome)


async def _listen_and_reply(app: StasisApp, store: RequestStore, agent: Agent, leg: Session,
                            task: Task) -> bool:
    for _ in range(3):
        request = await store.get(task.id)
        if request is None:
            await leg.play(["sound:acdkit/failure"])
            return False
        leg.clear_digits()
        # Any key stops the listening: an agent who heard enough answers at once.
        key = await leg.play(["sound:acdkit/vr-whisper", *say_digits(request.ref),
                              media(app.settings.requests, request, "transcript"),
                              "sound:acdkit/vr-caller-said",
                              media(app.settings.requests, request, "request"),
                              *addenda(request.addenda)],
                             interruptible=True)
        if key is None:
            key = await leg.play(["sound:acdkit/vr-agent-menu"], interruptible=True)
        key = leg.digits.pop(0) if key else await leg.read_key(KEY_WAIT)
        if key == "1":
            return await _record_reply(app, store, agent, leg, task)
        if key != "2":
            return False
    return False


def addenda(names: str) -> list[str]:
    """What the caller added later by calling again (store/self_service.py): Asterisk's
    stored recordings, each after the ``ss-addendum`` prompt."""
    return [m for name in names.split(",") if name
            for m in ("sound:acdkit/ss-addendum", f"recording:{name}")]


async def _record_reply(app: StasisApp, store: RequestStore, agent: Agent, leg: Session,
                        task: Task) -> bool:
    name = f"vr-{task.id}-reply-{int(app.clock.now())}"
    line = app.connector.lines.get(agent.id)
    if line is not None:  # ARI does not record a bridged channel (409)
        await app.control.remove_from_bridge(line.bridge_id, leg.channel_id)
    try:
        done = await record(app.control, leg, name,
                            max_seconds=app.settings.requests.max_reply_seconds,
                            max_silence=app.settings.requests.max_silence)
    finally:
        if line is not None and not leg.gone:
            await app.control.add_to_bridge(line.bridge_id, [leg.channel_id])
    audio = await app.control.download_recording(name) if done else None
    if not audio:
        await leg.play(["sound:acdkit/vr-failed"])
        return False
    await store_reply(store, app.jobs, task.id, app.clock.now(), audio=audio, by=agent.id)
    await app.control.delete_recording(name)
    await leg.play(["sound:acdkit/vr-reply-saved"])
    return True
