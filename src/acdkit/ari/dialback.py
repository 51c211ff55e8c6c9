"""Dial-back, agent first: the Stasis side of a callback attempt.

The ``dial_back`` job (services/dial_back.py) owns the attempt and its outcome; it asks this
process to run attempt *n* through the command list (store/callbacks.py). Here: ring the reserved
agent, whisper the number, then call the customer with the center's caller ID on a fixed
channel id (a second dial of the same attempt is refused by Asterisk), bridge both, and report
the outcome. The call then ends like any other: the task completes when either side leaves.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acdkit.ari.agents import AgentConnector
from acdkit.ari.calls import Call, Calls
from acdkit.ari.control import AriControl
from acdkit.ari.customer_call import ring_customer
from acdkit.ari.endings import Endings
from acdkit.ari.media import name_media
from acdkit.ari.reply_delivery import ReplyCalls, deliver_reply
from acdkit.ari.session import Session, Sessions
from acdkit.ari.snoop import Snooping, snoop
from acdkit.ari.spawner import Spawner
from acdkit.config import AgentSettings, CenterSettings, RequestSettings
from acdkit.core.agents import AgentEvent
from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import AcdError, NotDurable, RedisUnavailable
from acdkit.core.prompts import say_digits
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.limits import RateLimitedLog
from acdkit.ports import Clock
from acdkit.store.callbacks import CallbackStore
from acdkit.store.outbound import drop_follow_ups, forget_follow_up
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
say = RateLimitedLog(log)
COMMANDS_BACKOFF = (0.5, 1.0, 2.0, 5.0)  # seconds before the command loop asks Redis again

# Outbound sources → the ob-reason-* prompt of the whisper (anything else: a lead).
_OB_REASONS = (("missed-call", "missed"), ("ami:*", "missed"), ("callback-failed", "callback"),
               ("agent*", "agent"))


def whisper_of(task: Task, digits: int, name: Sequence[str] = ()) -> list[str]:
    """What the agent hears before the customer is dialed: a callback and its number, or an
    outbound task, the customer's ``name`` (media that speaks it), why it exists (its
    source), which attempt this is and the number."""
    if task.kind is not TaskKind.OUTBOUND:
        return ["sound:acdkit/whisper-callback", *say_digits(task.number, digits)]
    reason = next((r for p, r in _OB_REASONS if fnmatch.fnmatchcase(task.source, p)), "lead")
    return ["sound:acdkit/ob-whisper", *name, f"sound:acdkit/ob-reason-{reason}",
            "sound:acdkit/ob-attempt", f"number:{task.attempts + 1}",
            *say_digits(task.number, digits)]


@dataclass(frozen=True)
class DialBacks:
    """What a dial-back attempt uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    callbacks: CallbackStore  # the attempts
    sessions: Sessions
    calls: Calls
    spawner: Spawner
    connector: AgentConnector  # rings the agent, bridges the customer
    endings: Endings
    center: CenterSettings  # [center]: the trunk, the caller ID
    agents: AgentSettings  # [agents]: ring timeout, whisper digits
    requests: RequestSettings  # [requests]: the spoken names of outbound customers
    node: str = ""  # this serve's node: written on each attempt it dials


@dataclass(frozen=True)
class Commands:
    """What the command loop uses: the flow of each command the jobs and the pages send."""

    callbacks: CallbackStore  # the command list
    spawner: Spawner
    dial_backs: DialBacks
    replies: ReplyCalls
    snooping: Snooping


async def run_commands(ctx: Commands) -> None:
    """Take dial-back commands from the jobs, one flow each, until cancelled. A Redis outage
    (or a failover) pauses the loop, never ends it: else the jobs' commands would wait for a
    restart of serve while their agents stay reserved."""
    failures = 0
    while True:
        try:
            command = await ctx.callbacks.next_command(5.0)
        except RedisUnavailable as exc:
            pause = COMMANDS_BACKOFF[min(failures, len(COMMANDS_BACKOFF) - 1)]
            say.warning("commands redis", "commands: %s; retrying in %.1f s", exc, pause)
            failures += 1
            await asyncio.sleep(pause)
            continue
        failures = 0
        if command is None:
            continue
        if command.get("op") == "dial_back":
            ctx.spawner.spawn(dial_back(ctx.dial_backs, command),
                              f"dial-back {command.get('task_id')}")
        elif command.get("op") == "deliver_reply":
            ctx.spawner.spawn(deliver_reply(ctx.replies, command),
                              f"reply {command.get('task_id')}")
        elif command.get("op") == "snoop":  # from the supervisor page (web/supervisor.py)
            ctx.spawner.spawn(snoop(ctx.snooping, command), f"snoop {command.get('id')}")
        else:
            log.warning("unknown command %r", command)


async def dial_back(ctx: DialBacks, command: dict[str, Any]) -> None:
    task_id, attempt = str(command["task_id"]), int(command["attempt"])
    try:
        outcome, dialed = await _attempt(ctx, task_id, attempt, str(command.get("agent_id", "")))
    except NotDurable as exc:  # nobody was dialed: the job's retry policy decides
        log.warning("callback %s attempt %s not dialed: %s", task_id, attempt, exc)
        outcome, dialed = DialOutcome.FAILED, False
    except AcdError as exc:
        log.warning("callback %s attempt %s failed: %s", task_id, attempt, exc)
        outcome, dialed = DialOutcome.FAILED, True
    if outcome is not None:
        await ctx.callbacks.finish_attempt(task_id, attempt, outcome, ctx.clock.now(),
                                           dialed=dialed)


async def _attempt(ctx: DialBacks, task_id: str, n: int,
                   agent_id: str) -> tuple[DialOutcome | None, bool]:
    """Run attempt ``n``; its outcome (None once answered: already reported) and whether the
    customer was dialed. The agent's state after a miss is ours; after a customer who did not
    answer it is the job's, which settles task and agent in one step."""
    if not await _still_wanted(ctx, task_id, n, agent_id):
        return DialOutcome.FAILED, False
    task = await ctx.pool.get_task(task_id)
    agent = await ctx.pool.get_agent(agent_id)
    if task is None or agent is None:
        return DialOutcome.FAILED, False
    connector, center = ctx.connector, ctx.center
    await ctx.callbacks.update_attempt(task_id, n, state="ringing_agent", node=ctx.node)
    leg = await connector.reach_agent(agent, task.id, center.caller_id,
                                      leg_id=f"cb-{task_id}-{n}-a")
    if leg is None:
        await connector.move_agent(agent.id, AgentEvent.NO_ANSWER)
        ctx.endings.after_wrap_up(agent.id)
        return DialOutcome.AGENT_NO_ANSWER, False
    name = name_media(ctx.requests, task)
    await connector.whisper(leg, whisper_of(task, ctx.agents.whisper_digits, name))
    if not await _still_wanted(ctx, task_id, n, agent_id):  # the job gave up meanwhile
        await _drop_leg(ctx, agent.id, leg)
        return DialOutcome.FAILED, False
    await ctx.callbacks.update_attempt(task_id, n, state="ringing_customer")
    customer_id = f"cb-{task_id}-{n}-c"
    log.info("callback %s attempt %s: agent %s answered on %s; dialing the customer on %s",
             task_id, n, agent.id, leg.channel_id, customer_id)
    customer = ctx.sessions.open(Session(customer_id, ctx.control, caller_number=task.number))
    outcome = await ring_customer(ctx.control, customer, task.number, ctx.center,
                                  ctx.agents.ring_timeout)
    if outcome is not DialOutcome.ANSWERED:
        ctx.sessions.close(customer_id)
        await _drop_leg(ctx, agent.id, leg)
        return outcome, True
    call = ctx.calls.open(task_id, customer)
    call.taken.set()
    call.agent_id, call.agent_leg = agent.id, leg.channel_id
    # Active before the job hears "answered": a held callback with an answered attempt is
    # never dialed again, and an active one belongs to this call until it ends. The watcher
    # starts after the bridge: a customer who already hung up is seen at once.
    await connector.bridge(agent, task, call, leg)
    ctx.spawner.spawn(watch_customer(ctx, call), f"callback {task_id}")
    await ctx.callbacks.update_attempt(task_id, n, state="connected")
    await ctx.callbacks.finish_attempt(task_id, n, DialOutcome.ANSWERED, ctx.clock.now())
    if task.kind is TaskKind.CALLBACK:  # reached: a pending follow-up of the number is moot
        await drop_follow_ups(ctx.pool, task.number, ctx.clock.now(), "called back")
    # Tracked: a persistent agent's end key stops it before the customer leaves the line's
    # bridge, which Asterisk would do only after it (docs/architecture.md §7).
    await customer.start_playing(["sound:acdkit/cb-hello"])
    return None, True


async def _still_wanted(ctx: DialBacks, task_id: str, n: int, agent_id: str) -> bool:
    """The job still waits for this attempt, the task is still reserved for the agent, and
    replicas hold the attempt (``NotDurable`` otherwise)."""
    attempt = await ctx.callbacks.get_attempt(task_id, n)
    task = await ctx.pool.get_task(task_id)
    wanted = (attempt is not None and attempt.outcome is None and task is not None
              and task.state is TaskState.RESERVED and task.agent_id == agent_id)
    if not wanted:
        log.info("callback %s attempt %s: no longer wanted, not dialing", task_id, n)
        return False
    # The attempt record (its fixed channel ids) is on the replicas before anyone is dialed:
    # a failover then cannot forget an attempt that rang (docs/redis-ha.md).
    await ctx.pool.durability.confirm()
    return True


async def _drop_leg(ctx: DialBacks, agent_id: str, leg: Session) -> None:
    """Hang up a per-call agent leg; a persistent line stays up for the next task."""
    if agent_id not in ctx.connector.lines:
        await ctx.control.hangup(leg.channel_id)


async def watch_customer(ctx: DialBacks, call: Call) -> None:
    try:
        await call.customer.hung_up.wait()
    finally:
        await ctx.connector.customer_left(call)
        ctx.calls.close(call.task_id)
        ctx.sessions.close(call.customer.channel_id)
        task = await ctx.pool.get_task(call.task_id)
        if task is not None:
            await ctx.callbacks.forget_callback(task)
            await forget_follow_up(ctx.pool, task)

