"""A supervisor listens to, whispers to or barges in on an agent's call (docs/pages.md).

The supervisor page pushes a ``snoop`` command (web/supervisor.py); serve, which owns the
ARI app, runs it here: a snoop channel on the agent's leg (``spy=both``; ``whisper=none`` to
listen, ``out`` so only the agent hears the supervisor, ``both`` to barge so both do), the
supervisor's phone rung like an agent's (``endpoint_for``: a PJSIP endpoint, or an E.164
number the page validated with the number policy), and both in a mixing bridge of their own.
Either side hanging up ends the other; the snoop ends by itself when the agent's leg does.
Both channels have a session before they enter the app, so no other flow takes them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from acdkit.ari.agents import answered, endpoint_for
from acdkit.ari.session import ChannelGone, Session
from acdkit.core.agents import Agent
from acdkit.core.errors import AcdError
from acdkit.policies import reach_policy
from acdkit.services.reach import check_agent_reach

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)
DIRECTIONS = {"listen": ("both", "none"), "whisper": ("both", "out"), "barge": ("both", "both")}
_ID = re.compile(r"^[a-z0-9]{1,16}$")


async def agent_channel(app: StasisApp, agent: Agent) -> str | None:
    """The channel of the agent's call now: its persistent line, the leg a live call rang, or
    (a dial-back's leg) the agent endpoint's channel in our app."""
    line = app.connector.lines.get(agent.id)
    if line is not None and not line.session.gone:
        return line.session.channel_id
    call = app.calls.get(agent.task_id or "")
    if call is not None and call.agent_leg:
        return call.agent_leg
    if agent.reach.startswith("PJSIP/"):
        for channel in await app.control.list_channels():
            if channel.name.startswith(f"{agent.reach}-"):
                return channel.id
    return None


async def snoop(app: StasisApp, command: dict[str, Any]) -> None:
    how, cid = str(command.get("mode", "")), str(command.get("id", ""))
    if how not in DIRECTIONS or not _ID.fullmatch(cid):
        log.warning("snoop command refused: %r", command)
        return
    agent = await app.pool.get_agent(str(command.get("agent_id", "")))
    target = await agent_channel(app, agent) if agent is not None and agent.task_id else None
    if agent is None or target is None:
        log.info("snoop %s: agent %s has no call now", cid, command.get("agent_id"))
        return
    try:
        reach = await check_agent_reach(app.pool, str(command.get("reach", "")),
                                        reach_policy(app.settings, app.number_policy))
    except AcdError as exc:
        log.warning("snoop %s: %s", cid, exc)
        return
    spy, whisper = DIRECTIONS[how]
    snoop_leg = app.sessions.open(Session(f"snoop-{cid}", app.control, args=("snoop",)))
    sup_leg = app.sessions.open(Session(f"sup-{cid}", app.control, args=("supervisor",)))
    bridge = f"snoop-{cid}"
    try:
        if await app.control.snoop(target, snoop_leg.channel_id, spy=spy, whisper=whisper,
                                   app_args=("snoop", agent.id)) is None:
            log.info("snoop %s: agent %s's channel is gone", cid, agent.id)
            return
        await _ring_supervisor(app, sup_leg, reach, agent.id)
        await app.ensure_bridge(bridge, "mixing")
        await app.control.add_to_bridge(bridge, [snoop_leg.channel_id, sup_leg.channel_id])
        log.info("snoop %s: %s %ss on agent %s (%s) from %s", cid, command.get("by"), how,
                 agent.id, target, reach)
        await asyncio.wait([asyncio.create_task(snoop_leg.hung_up.wait()),
                            asyncio.create_task(sup_leg.hung_up.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
    except ChannelGone:
        pass
    finally:
        for leg in (snoop_leg, sup_leg):
            if not leg.gone:
                await app.control.hangup(leg.channel_id)
            app.sessions.close(leg.channel_id)
        await app.control.destroy_bridge(bridge)


async def _ring_supervisor(app: StasisApp, leg: Session, reach: str, agent_id: str) -> None:
    timeout = app.settings.agents.ring_timeout
    created = await app.control.originate(
        endpoint_for(reach, app.settings.center.trunk), leg.channel_id,
        app_args=("supervisor", agent_id), caller_id=app.settings.center.caller_id or None,
        timeout=int(timeout))
    if created is None or await answered(leg, timeout + 5) is None:
        raise ChannelGone(leg.channel_id)
