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
from dataclasses import dataclass
from typing import Any

from acdkit.ari.agents import answered, endpoint_for
from acdkit.ari.bridges import Bridges
from acdkit.ari.calls import Calls, Lines
from acdkit.ari.control import AriControl
from acdkit.ari.session import ChannelGone, Session, Sessions
from acdkit.config import CenterSettings
from acdkit.core.agents import Agent, ReachPolicy
from acdkit.core.errors import AcdError
from acdkit.services.reach import check_agent_reach
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
DIRECTIONS = {"listen": ("both", "none"), "whisper": ("both", "out"), "barge": ("both", "both")}
_ID = re.compile(r"^[a-z0-9]{1,16}$")


@dataclass(frozen=True)
class Snooping:
    """What listening, whispering and barging in use."""

    control: AriControl
    pool: Pool
    sessions: Sessions
    calls: Calls
    lines: Lines
    bridges: Bridges
    reach: ReachPolicy  # where the supervisor may be dialed
    center: CenterSettings  # [center]: the trunk, the caller ID
    ring_timeout: float  # agents.ring_timeout


async def agent_channel(ctx: Snooping, agent: Agent) -> str | None:
    """The channel of the agent's call now: its persistent line, the leg a live call rang, or
    (a dial-back's leg) the agent endpoint's channel in our app."""
    line = ctx.lines.get(agent.id)
    if line is not None and not line.session.gone:
        return line.session.channel_id
    call = ctx.calls.get(agent.task_id or "")
    if call is not None and call.agent_leg:
        return call.agent_leg
    if agent.reach.startswith("PJSIP/"):
        for channel in await ctx.control.list_channels():
            if channel.name.startswith(f"{agent.reach}-"):
                return channel.id
    return None


async def snoop(ctx: Snooping, command: dict[str, Any]) -> None:
    how, cid = str(command.get("mode", "")), str(command.get("id", ""))
    if how not in DIRECTIONS or not _ID.fullmatch(cid):
        log.warning("snoop command refused: %r", command)
        return
    agent = await ctx.pool.get_agent(str(command.get("agent_id", "")))
    target = await agent_channel(ctx, agent) if agent is not None and agent.task_id else None
    if agent is None or target is None:
        log.info("snoop %s: agent %s has no call now", cid, command.get("agent_id"))
        return
    try:
        reach = await check_agent_reach(ctx.pool, str(command.get("reach", "")),
                                        ctx.reach)
    except AcdError as exc:
        log.warning("snoop %s: %s", cid, exc)
        return
    spy, whisper = DIRECTIONS[how]
    snoop_leg = ctx.sessions.open(Session(f"snoop-{cid}", ctx.control, args=("snoop",)))
    sup_leg = ctx.sessions.open(Session(f"sup-{cid}", ctx.control, args=("supervisor",)))
    bridge = f"snoop-{cid}"
    try:
        if await ctx.control.snoop(target, snoop_leg.channel_id, spy=spy, whisper=whisper,
                                   app_args=("snoop", agent.id)) is None:
            log.info("snoop %s: agent %s's channel is gone", cid, agent.id)
            return
        await _ring_supervisor(ctx, sup_leg, reach, agent.id)
        await ctx.bridges.ensure(bridge, "mixing")
        await ctx.control.add_to_bridge(bridge, [snoop_leg.channel_id, sup_leg.channel_id])
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
                await ctx.control.hangup(leg.channel_id)
            ctx.sessions.close(leg.channel_id)
        await ctx.control.destroy_bridge(bridge)


async def _ring_supervisor(ctx: Snooping, leg: Session, reach: str, agent_id: str) -> None:
    timeout = ctx.ring_timeout
    created = await ctx.control.originate(
        endpoint_for(reach, ctx.center.trunk), leg.channel_id,
        app_args=("supervisor", agent_id), caller_id=ctx.center.caller_id or None,
        timeout=int(timeout))
    if created is None or await answered(leg, timeout + 5) is None:
        raise ChannelGone(leg.channel_id)
