"""A persistent agent's end key: during a call the agent presses ``agents.end_key`` (``#``) on
its phone to end it and keep its line. The customer leaves the agent's line bridge, answers
the caller's survey when ``ratings.survey`` is on, and is hung up; the task completes; the
agent, still on its line, rates the customer (``ratings.agent_prompt``), then wraps up before
its next task.

Like the follow-up key (followup_key.py), the key is read by polling the line's pressed digits:
the line's event queue belongs to whichever flow talks to the agent next.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from acdkit.ari import survey
from acdkit.ari.calls import AgentLine, Call
from acdkit.ari.control import AriControl
from acdkit.ari.endings import Endings
from acdkit.ari.spawner import Spawner
from acdkit.ari.survey import Survey
from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.errors import AcdError, InvalidTransition, NotFound
from acdkit.core.tasks import Task, TaskEvent
from acdkit.ports import Clock
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
POLL = 0.25  # seconds between looks at the keys pressed


@dataclass(frozen=True)
class EndKey:
    """What the end key uses."""

    key: str  # agents.end_key
    control: AriControl
    pool: Pool
    clock: Clock
    spawner: Spawner
    endings: Endings
    survey: Survey


async def watch(ctx: EndKey, agent: Agent, task: Task, call: Call, line: AgentLine) -> None:
    """Until either side leaves the call: the end key ends it for the customer."""
    key = ctx.key
    leg = line.session
    if not key:
        return
    while key in leg.digits:  # pressed before the conversation (during the whisper)
        leg.digits.remove(key)
    while not (leg.gone or call.customer.gone) and call.agent_id == agent.id:
        if key in leg.digits:
            leg.digits.remove(key)
            await end_call(ctx, agent.id, task, call, line)
            return
        await asyncio.sleep(POLL)


async def end_call(ctx: EndKey, agent_id: str, task: Task, call: Call,
                   line: AgentLine) -> None:
    """The agent ended the call: complete the task, free the customer for the survey (or hang
    it up), ask the agent for its rating of the customer, then wrap up."""
    rater = await survey.caller_rater(ctx.survey, call)
    try:  # atomic: when the customer hung up at the same moment, its clean-up wins
        await ctx.pool.move_task(task.id, TaskEvent.COMPLETE, ctx.clock.now(),
                                 outcome="agent ended the call")
    except (InvalidTransition, NotFound) as exc:
        log.info("task %s: end key of agent %s not applied: %s", task.id, agent_id, exc)
        return
    log.info("task %s: agent %s ended the call, line kept", task.id, agent_id)
    call.agent_id = None  # the conversation is over: the call's watchers stop
    customer = call.customer.channel_id
    try:
        await call.customer.stop_playing()  # a dial-back's hello would hold the move up
        await ctx.control.remove_from_bridge(line.bridge_id, customer)
    except AcdError as exc:
        log.info("task %s: customer not taken out of the line: %s", task.id, exc)
    if rater:
        ctx.spawner.spawn(survey.survey_caller(ctx.survey, call, rater), f"survey {task.id}")
    else:
        await ctx.control.hangup(customer)
    await survey.agent_rates(ctx.survey, line.session, task, agent_id)
    await ctx.endings.move_agent(agent_id, AgentEvent.END)
    ctx.endings.after_wrap_up(agent_id)
