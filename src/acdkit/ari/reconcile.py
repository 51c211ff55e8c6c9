"""After serve (re)connects to ARI: make the pool agree with the channels Asterisk really has.

A serve that dies (SIGKILL, a crash) leaves two things behind. Held tasks: an agent stays
RESERVED or ON_CALL for a task whose channels are gone, or whose call is still up with no
flow watching it. Stranded channels: callers still in our Stasis app (in a holding bridge,
with music) that no flow of this process owns, their tasks queued as ghosts.

``reconcile`` runs at every ``Connected``, in two steps:

1. ``settle``: every agent held since before this process started, whose task no flow of ours
   owns. A live call whose customer and agent leg are both up is adopted (its flow watches
   both legs again and ends it properly); a live call with a side gone ends like a hang-up
   (the connector's own end path: completed, the agent through wrap-up); a reserved live call
   whose customer waits goes back in line with its place (the agent to wrap-up); a callback
   attempt cut while dialing ends ``failed`` for its job (store/callbacks.py: the job decides,
   reschedules and frees the agent; the fixed channel ids keep the dial fence).
2. ``adopt``: every channel in our app with no session here. A caller whose call task is not
   over gets its flow back with its task and place (``queue.serve_queued``); any other channel
   that entered with known Stasis args starts its flow again (a caller in the IVR starts the
   inbound flow anew); an orphaned leg we originated is hung up; anything else goes to the
   failure context. No channel is left in silence.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from acdkit.ari import events as ev
from acdkit.ari.agents import AgentConnector
from acdkit.ari.bridges import Bridges
from acdkit.ari.calls import Calls
from acdkit.ari.client import AriClient
from acdkit.ari.control import AriControl
from acdkit.ari.dialback import DialBacks, watch_customer
from acdkit.ari.endings import Endings
from acdkit.ari.session import Session, Sessions
from acdkit.ari.spawner import Spawner
from acdkit.core.agents import Agent, AgentEvent, AgentMode, AgentState
from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import AcdError, InvalidTransition, NotFound
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.ports import Clock
from acdkit.store.callbacks import AttemptState, CallbackStore, agent_leg
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)

HELD = (AgentState.RESERVED, AgentState.ON_CALL)
_DIALING = (AttemptState.RINGING_AGENT, AttemptState.RINGING_CUSTOMER)
_OUR_LEGS = ("agent-", "cb-")  # channel ids of the legs we originate (ari/agents, dialback)
_LINE = "line-"  # the bridge of a persistent agent's line: line-<agent id>
_HOLD = "hold-"  # a skill's holding bridge (Bridges.hold_id)
_SCAN = 5_000  # newest tasks read to find the task of a stranded caller
RESETTLE_EVERY = 15.0  # seconds between two looks for holds that lost their end (resettle)


@dataclass(frozen=True)
class Reconciling:
    """What reconciling uses, and how it hands a channel back to a flow."""

    client: AriClient  # the channels in our app, and their Stasis args
    control: AriControl
    pool: Pool
    clock: Clock
    callbacks: CallbackStore  # callback attempts cut while dialing
    sessions: Sessions
    calls: Calls
    spawner: Spawner
    bridges: Bridges
    connector: AgentConnector  # persistent lines, a call's end
    endings: Endings
    dial_backs: DialBacks  # a callback's watcher
    started_at: float  # holds older than this may be a dead serve's
    adopt_caller: Callable[[Session, Task], None]  # the inbound flow, for a waiting caller
    restart: Callable[[ev.StasisStart], None]  # the flow a channel's Stasis args name
    node: str = ""  # this serve's node: only its own calls' channels are in its Asterisk


async def reconcile(ctx: Reconciling) -> None:
    """Settle held tasks, then adopt stranded channels (see the module docstring)."""
    live = {c.id: c for c in await ctx.control.list_channels()}
    bridges = await ctx.control.list_bridges()
    lines, holding = _members(bridges, _LINE, live), _members(bridges, _HOLD, live)
    settled = 0
    for agent in await ctx.pool.list_agents():
        if _dead_hold(ctx, agent):
            settled += await _guarded(settle(ctx, agent, live, lines), f"agent {agent.id}")
    adopted = await adopt(ctx, live, lines, holding)
    if settled or adopted:
        log.info("reconciled: %d held tasks settled, %d channels adopted", settled, adopted)


async def resettle(ctx: Reconciling, before: float) -> int:
    """Holds that lost their end: an agent held since before ``before`` for a task that is
    over, gone, or active with no call of this process. A Redis failover can take the last
    unconfirmed writes along (the end of a call, the agent's release: docs/redis-ha.md)
    while the flow that made them has finished. Each is settled as a dead serve's would be
    (``settle``); a reserved task is left alone, its flow or job is still at work. serve runs
    this every ``RESETTLE_EVERY`` s. Returns how many were settled."""
    held = [a for a in await ctx.pool.list_agents()
            if a.state in HELD and a.task_id is not None and a.state_since < before
            and ctx.calls.get(a.task_id) is None]
    lost = []
    for agent in held:
        assert agent.task_id is not None
        task = await ctx.pool.get_task(agent.task_id)
        if task is None or task.terminal or task.state is TaskState.ACTIVE:
            lost.append(agent)
    if not lost:
        return 0
    live = {c.id: c for c in await ctx.control.list_channels()}
    lines = _members(await ctx.control.list_bridges(), _LINE, live)
    settled = 0
    for agent in lost:
        settled += await _guarded(settle(ctx, agent, live, lines), f"agent {agent.id}")
    if settled:
        log.warning("resettled %d holds whose end was lost", settled)
    return settled


async def adopt_strays(ctx: Reconciling, earlier: frozenset[str]) -> frozenset[str]:
    """Channels in our app that no session owns, in two rounds in a row (``earlier`` is the
    previous round's answer): adopt them as ``reconcile`` does. A reconcile whose ARI
    requests failed (Asterisk slow to answer after a takeover) leaves such callers behind;
    two rounds keep a channel whose StasisStart is still on its way out of it. Returns this
    round's strays, for the next."""
    strays = frozenset(c for c in await _app_channels(ctx) if ctx.sessions.get(c) is None)
    again = strays & earlier
    if not again:
        return strays
    live = {c.id: c for c in await ctx.control.list_channels()}
    bridges = await ctx.control.list_bridges()
    lines, holding = _members(bridges, _LINE, live), _members(bridges, _HOLD, live)
    adopted = await adopt(ctx, {c: live[c] for c in again if c in live}, lines, holding)
    log.warning("adopted %d channels stranded in the app", adopted)
    return strays - again


def _members(bridges: list[ev.Bridge], prefix: str,
             live: Mapping[str, ev.Channel]) -> dict[str, str]:
    """Live channels in our bridges named ``prefix<name>``: channel id → name."""
    return {c: b.id.removeprefix(prefix) for b in bridges if b.id.startswith(prefix)
            for c in b.channels if c in live}


async def _guarded(work: Any, what: str) -> int:
    try:
        return int(bool(await work))
    except AcdError as exc:
        log.warning("reconcile %s: %s", what, exc)
        return 0


def _dead_hold(ctx: Reconciling, agent: Agent) -> bool:
    """An agent held for a task by a serve that is gone: held since before we started, for a
    task no call of ours has."""
    return (agent.state in HELD and agent.task_id is not None
            and agent.state_since < ctx.started_at and ctx.calls.get(agent.task_id) is None)


# -- 1. held tasks ---------------------------------------------------------------------------


def legs_of(agent: Agent, task: Task, live: Mapping[str, ev.Channel],
            attempt: int = 0) -> tuple[str | None, list[str]]:
    """The customer channel of ``task`` and the agent legs of ``agent`` for it that Asterisk
    still has: a live call's caller and ``agent-<agent>-<n>-<task[:8]>`` legs; a callback's
    fixed ``cb-<task>-<n>-c`` and ``-a`` of attempt ``n``."""
    if task.kind is TaskKind.CALL:
        customer = task.channel_id
        prefix, suffix = f"agent-{agent.id}-", f"-{task.id[:8]}"
        legs = [c for c in live if c.startswith(prefix) and c.endswith(suffix)]
    else:
        customer = agent_leg(task.id, attempt, "c") if attempt else None
        legs = [agent_leg(task.id, attempt, "a")] if attempt else []
    return (customer if customer in live else None), [c for c in legs if c in live]


async def settle(ctx: Reconciling, agent: Agent, live: Mapping[str, ev.Channel],
                 lines: Mapping[str, str]) -> bool:
    """Settle ``agent``'s hold left by a dead serve; False when nothing was to be done."""
    assert agent.task_id is not None
    task = await ctx.pool.get_task(agent.task_id)
    if task is None or task.terminal or task.agent_id != agent.id:
        await _free(ctx, agent.id, agent.task_id)
        return True
    if task.kind is TaskKind.VOICE_REQUEST:
        return False  # a work order lives on the agent's screen, not in channels
    attempt = await ctx.callbacks.last_attempt(task.id) if task.kind is not TaskKind.CALL \
        else None
    if (attempt.node if attempt else task.node) not in ("", ctx.node):
        return False  # another node's channels: that node (or its standby) settles it
    customer, legs = legs_of(agent, task, live, attempt.n if attempt else 0)
    if any(ctx.sessions.get(c) is not None for c in [customer, *legs] if c):
        return False  # a flow of this process owns it (a reconnect, not a restart)
    log.warning("task %s (%s, %s): agent %s held by a dead serve; customer %s, agent legs %s",
                task.id, task.kind, task.state, agent.id, customer or "gone", legs or "gone")
    if task.state is TaskState.ACTIVE:
        line = next((c for c, a in lines.items() if a == agent.id and c != customer), None)
        if line is not None and await _keep_line(ctx, agent.id, line):
            legs = [line]
        await _rewatch(ctx, agent, task, customer, legs)
    elif task.kind is TaskKind.CALL:
        await _hang_up(ctx, legs)
        await _requeue_or_abandon(ctx, agent, task, customer)
    elif attempt is not None and attempt.outcome is None and attempt.state in _DIALING:
        # The job decides what follows a failed attempt and frees the agent in one step.
        await _hang_up(ctx, [*legs, *([customer] if customer else [])])
        await ctx.callbacks.finish_attempt(
            task.id, attempt.n, DialOutcome.FAILED, ctx.clock.now(), detail="serve restarted",
            dialed=attempt.state is AttemptState.RINGING_CUSTOMER)
    else:
        return False  # its dial_back job has not dialed yet: the attempt protocol goes on
    return True


async def _rewatch(ctx: Reconciling, agent: Agent, task: Task, customer: str | None,
                   legs: list[str]) -> None:
    """Give an active call its flow back. A side that is gone ends the call by the usual
    path: the customer's flow (or a callback's watcher) ends it, hanging up the other side."""
    session = Session(customer or task.channel_id or agent_leg(task.id, 0, "c"), ctx.control,
                      caller_number=task.number)
    call = ctx.calls.open(task.id, session)
    call.taken.set()
    line = ctx.connector.lines.get(agent.id)
    call.agent_id = agent.id
    call.bridge_id = line.bridge_id if line is not None else f"call-{task.id}"
    call.agent_leg = legs[0] if legs else None
    await _hang_up(ctx, legs[1:])
    # A persistent line's own watcher ends the call if the agent hangs up.
    if customer is not None and call.agent_leg is not None and line is None:
        leg = ctx.sessions.open(Session(call.agent_leg, ctx.control))
        ctx.spawner.spawn(ctx.connector.watch_leg(call, leg), f"leg {call.agent_leg}")
    elif customer is not None and call.agent_leg is None:  # the agent left meanwhile
        await ctx.control.hangup(customer)
        customer = None
    if customer is None:
        session.feed(ev.ChannelDestroyed(channel=ev.Channel(id=session.channel_id)))
    if task.kind is TaskKind.CALL:
        ctx.adopt_caller(session, task)
    else:
        ctx.sessions.open(session)
        ctx.spawner.spawn(watch_customer(ctx.dial_backs, call), f"callback {task.id}")


async def _requeue_or_abandon(ctx: Reconciling, agent: Agent, task: Task,
                              customer: str | None) -> None:
    """A live call reserved when serve died: back in line with its place while its caller
    waits (adopted next), else abandoned; the agent to wrap-up either way."""
    now = ctx.clock.now()
    if customer is None:
        await ctx.connector.end(task.id, agent.id, TaskEvent.ABANDON, "caller gone")
        return
    try:
        await ctx.pool.release(task.id, AgentState.WRAP_UP, now, reason="serve_restarted",
                               from_states=(TaskState.RESERVED,))
    except (InvalidTransition, NotFound) as exc:
        log.info("task %s: not released: %s", task.id, exc)
        return
    ctx.endings.after_wrap_up(agent.id)


async def _free(ctx: Reconciling, agent_id: str, task_id: str) -> None:
    """The agent holds a task that is over (or not its own): wrap-up, then ready."""
    try:
        await ctx.pool.move_agent(agent_id, AgentEvent.END, ctx.clock.now(),
                                  expect_task=task_id)
    except (InvalidTransition, NotFound) as exc:
        log.info("agent %s: not freed: %s", agent_id, exc)
        return
    ctx.endings.after_wrap_up(agent_id)


async def _hang_up(ctx: Reconciling, channel_ids: list[str]) -> None:
    for channel_id in channel_ids:
        await ctx.control.hangup(channel_id)


# -- 2. stranded channels ----------------------------------------------------------------------


async def adopt(ctx: Reconciling, live: Mapping[str, ev.Channel], lines: Mapping[str, str],
                holding: Mapping[str, str]) -> int:
    """Give every channel in our app that no session owns a flow; return how many."""
    stranded = [c for c in await _app_channels(ctx)
                if c in live and ctx.sessions.get(c) is None]
    if not stranded:
        return 0
    by_channel = {t.channel_id: t for t in await ctx.pool.list_tasks(limit=_SCAN)
                  if t.kind is TaskKind.CALL and t.channel_id and not t.terminal}
    for channel_id in stranded:
        await _guarded(_adopt_one(ctx, live[channel_id], by_channel.get(channel_id), lines,
                                  holding), f"channel {channel_id}")
    return len(stranded)


async def _adopt_one(ctx: Reconciling, channel: ev.Channel, task: Task | None,
                     lines: Mapping[str, str], holding: Mapping[str, str]) -> bool:
    channel_id = channel.id
    if task is not None and task.state in (TaskState.QUEUED, TaskState.RESERVED):
        log.warning("task %s: caller %s adopted (waiting since %.0f)", task.id, channel_id,
                    task.enqueued_at)
        if channel_id not in holding:  # e.g. cut between leaving hold and the bridge
            await ctx.bridges.hold(task.skill, channel_id)
        session = Session(channel_id, ctx.control, caller_number=task.number)
        ctx.adopt_caller(session, task)
    elif channel_id in lines and await _keep_line(ctx, lines[channel_id], channel_id):
        log.warning("agent %s: persistent line %s adopted", lines[channel_id], channel_id)
    elif channel_id.startswith(_OUR_LEGS):
        log.warning("channel %s: a leg nobody holds; hung up", channel_id)
        await ctx.control.hangup(channel_id)
    else:
        args = await _stasis_args(ctx, channel_id)
        log.warning("channel %s: stranded in the app (args %s); its flow starts again",
                    channel_id, ",".join(args))
        ctx.restart(ev.StasisStart(channel=channel, args=args))
    return True


async def _keep_line(ctx: Reconciling, agent_id: str, channel_id: str) -> bool:
    """Watch a persistent line a dead serve left in its bridge again, if its agent is still
    signed in persistent; False (the caller hangs it up) otherwise."""
    agent = await ctx.pool.get_agent(agent_id)
    if agent is None or not agent.logged_in or agent.mode is not AgentMode.PERSISTENT:
        return False
    session = ctx.sessions.open(Session(channel_id, ctx.control, args=("agent-line",)))
    ctx.connector.keep_line(agent_id, session)
    return True


async def _app_channels(ctx: Reconciling) -> list[str]:
    """The channels Asterisk has in our Stasis app."""
    response = await ctx.client.request("GET", f"applications/{ctx.client.app}",
                                        ok_statuses=(404,))
    body = response.body if response.status == 200 else None
    ids = body.get("channel_ids") if isinstance(body, dict) else None
    return [str(c) for c in ids] if isinstance(ids, list) else []


async def _stasis_args(ctx: Reconciling, channel_id: str) -> tuple[str, ...]:
    """The args the channel entered our app with (``Stasis(acdkit,<args>)``), if known."""
    response = await ctx.client.request("GET", f"channels/{channel_id}", ok_statuses=(404,))
    body = response.body if response.status == 200 else None
    plan = body.get("dialplan") if isinstance(body, dict) else None
    data = plan.get("app_data", "") if isinstance(plan, dict) else ""
    name, _, args = str(data).partition(",")
    return tuple(args.split(",")) if name == ctx.client.app and args else ()
