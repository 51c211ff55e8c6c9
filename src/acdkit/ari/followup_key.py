"""The agent's follow-up key: during a bridged call the agent presses ``outbound.agent_key``
(9) on the phone and the customer gets an outbound follow-up task, due
``outbound.agent_follow_up_after`` seconds later; the agent alone hears a confirmation.

The key is read from the agent leg's pressed digits without taking events off its queue
(other flows read that queue after the call: the post-call survey), so this watcher polls.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from acdkit.ari.calls import Call
from acdkit.ari.control import AriControl
from acdkit.ari.session import Session
from acdkit.config import OutboundSettings
from acdkit.core.agents import Agent
from acdkit.core.errors import AcdError
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task
from acdkit.ports import Clock
from acdkit.store.outbound import add_follow_up
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
POLL = 0.25  # seconds between looks at the keys pressed


@dataclass(frozen=True)
class FollowUpKey:
    """What the follow-up key uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    numbers: NumberPolicy
    settings: OutboundSettings  # [outbound]


async def watch(ctx: FollowUpKey, agent: Agent, task: Task, call: Call, leg: Session) -> None:
    """Until either side leaves: each press of the key asks for one follow-up."""
    key = ctx.settings.agent_key
    if not key or not task.number:
        return
    while not (leg.gone or call.customer.gone) and call.agent_id == agent.id:
        if key in leg.digits:
            leg.digits.remove(key)
            await _follow_up(ctx, agent, task, leg)
        await asyncio.sleep(POLL)


async def _follow_up(ctx: FollowUpKey, agent: Agent, task: Task, leg: Session) -> None:
    now = ctx.clock.now()
    try:
        made = await add_follow_up(
            ctx.pool, number=task.number, skill=task.skill, reason="agent", source="agent",
            now=now, policy=ctx.numbers, name=task.name,
            due_at=now + ctx.settings.agent_follow_up_after,
            attributes={"agent": agent.id, "after_task": task.id})
    except AcdError as exc:
        log.info("task %s: agent %s follow-up refused: %s", task.id, agent.id, exc)
        made = None
    log.info("task %s: agent %s asked for a follow-up: %s", task.id, agent.id,
             made.id if made else "none (pending, do-not-call or invalid)")
    prompt = "sound:acdkit/ob-followup-ok" if made else "sound:beeperr"
    try:
        await ctx.control.play(leg.channel_id, prompt)
    except AcdError as exc:
        log.info("follow-up confirmation not played: %s", exc)
