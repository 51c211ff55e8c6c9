"""Agents on any phone: the connector that rings an agent and bridges it to a customer, the
persistent agent lines, and login from a phone.

Agent first: the customer (already on the line for a live call) is bridged only after the
agent's leg answered. ``per_call`` agents get a new call for each task; ``persistent`` agents
keep one call up in their own bridge and tasks are bridged in and out of it.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import cast

from acdkit.ari import end_key, followup_key, survey
from acdkit.ari import events as ev
from acdkit.ari.bridges import Bridges
from acdkit.ari.calls import AgentLine, Call, Calls, Lines
from acdkit.ari.control import AriControl
from acdkit.ari.end_key import EndKey
from acdkit.ari.endings import Endings
from acdkit.ari.followup_key import FollowUpKey
from acdkit.ari.session import ChannelGone, Session, Sessions
from acdkit.ari.spawner import Spawner
from acdkit.ari.survey import Survey
from acdkit.config import AgentSettings, CenterSettings
from acdkit.core.agents import Agent, AgentEvent, AgentMode, AgentState, ReachPolicy
from acdkit.core.errors import AcdError, AriRequestFailed, InvalidInput
from acdkit.core.pins import PinOutcome, PinPolicy
from acdkit.core.prompts import say_digits
from acdkit.core.tasks import Task, TaskEvent, TaskState
from acdkit.ports import Clock
from acdkit.services.reach import check_agent_reach
from acdkit.store.base import AgentMove, TaskMove
from acdkit.store.pins import verify_pin
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
_legs = itertools.count(1)


async def answered(session: Session, timeout: float) -> Session | None:
    """Wait until an originated channel enters our app (it answered); None on timeout.
    Raises ``ChannelGone`` when it hung up first (busy, no answer, failed)."""
    while True:
        event = await session.next_event(timeout)
        if event is None:
            return None
        if isinstance(event, ev.StasisStart):
            return session


def endpoint_for(reach: str, trunk: str) -> str:
    """The ARI endpoint of a validated reach: a PJSIP endpoint, or an E.164 number on the trunk."""
    if reach.startswith("PJSIP/"):
        return reach
    return f"PJSIP/{reach.lstrip('+')}@{trunk}"


@dataclass(frozen=True)
class Connecting:
    """What the connector uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    sessions: Sessions
    calls: Calls
    lines: Lines
    spawner: Spawner
    bridges: Bridges
    endings: Endings
    center: CenterSettings  # [center]: the trunk, the caller ID
    agents: AgentSettings  # [agents]: ring timeout, whisper
    reach: ReachPolicy  # where agents may be dialed
    decline: bool  # ratings.decline: the whisper stops at a key (``*`` declines)
    survey: Survey
    follow_up: FollowUpKey
    end_key: EndKey


class AgentConnector:
    def __init__(self, ctx: Connecting) -> None:
        self.ctx = ctx
        self.lines = ctx.lines

    # -- the dispatcher's hand-off ---------------------------------------------------------

    async def connect(self, agent: Agent, task: Task) -> None:
        """Ring ``agent`` for the live call ``task`` and bridge it to the waiting caller."""
        call = self.ctx.calls.get(task.id)
        if call is None or call.customer.gone:
            await self.end(task.id, agent.id, TaskEvent.ABANDON, "caller gone before connect")
            return
        call.taken.set()
        call.agent_id = agent.id
        caller_id = call.customer.caller_number or self.ctx.center.caller_id
        leg = await self.reach_agent(agent, task.id, caller_id, call)
        if leg is None:
            await self._missed(agent, task, call)
            return
        if call.customer.gone:
            await self._hang_up_leg(agent, leg)
            await self.end(task.id, agent.id, TaskEvent.ABANDON, "caller left while ringing")
            return
        waited = round(self.ctx.clock.now() - task.enqueued_at)
        await self.whisper(leg, ["sound:acdkit/whisper-call",
                                 *say_digits(task.number, self.ctx.agents.whisper_digits),
                                 f"number:{waited}", "sound:seconds",
                                 *survey.whisper_rating(task)])
        if await survey.declined(self.ctx.survey, agent, task, call, leg):
            return
        # The whisper takes seconds: either side may have hung up meanwhile.
        if call.customer.gone:
            await self._hang_up_leg(agent, leg)
            await self.end(task.id, agent.id, TaskEvent.ABANDON, "caller left during the whisper")
            return
        if leg.gone:  # the agent hung up before being connected: like a missed offer
            if agent.id not in self.lines:
                self.ctx.sessions.close(leg.channel_id)
            await self._missed(agent, task, call)
            return
        current = await self.ctx.pool.get_task(task.id)
        if current is None or current.state is not TaskState.RESERVED:
            # The caller took a callback while the agent was being rung: free the agent.
            log.info("task %s is %s now: agent %s not connected", task.id,
                     current.state if current else "gone", agent.id)
            await self._hang_up_leg(agent, leg)
            await self.move_agent(agent.id, AgentEvent.END)
            self.ctx.endings.after_wrap_up(agent.id)
            return
        try:
            await self.bridge(agent, current, call, leg)
        except AriRequestFailed:
            await self._back_on_hold(agent, current, call, leg)
            raise  # the dispatcher puts the task back in line, with its place
        if call.customer.gone:
            # Gone while being bridged: its flow's clean-up saw the task still reserved.
            await self.customer_left(call)

    async def customer_left(self, call: Call) -> bool:
        """The customer's channel is gone: end the task and free (or hang up) the agent side.
        True when this cannot be a missed call (store/outbound.py ``on_missed_call``): the
        customer was talking to an agent, or the task had ended otherwise than abandoned."""
        task = await self.ctx.pool.get_task(call.task_id)
        if task is None or task.terminal:
            return task is not None and task.state is not TaskState.ABANDONED
        if task.state is TaskState.QUEUED:
            await self._move_task(task.id, TaskEvent.ABANDON, "caller hung up while waiting")
        elif task.state is TaskState.RESERVED:
            # connect() is ringing the agent: it sees the customer gone and finishes the task.
            if call.agent_leg and call.agent_id not in self.lines:
                await self.ctx.control.hangup(call.agent_leg)
        elif task.state is TaskState.ACTIVE and call.agent_id:
            if await survey.customer_left(self.ctx.survey, call, task):
                return True
            line = self.lines.get(call.agent_id)
            if line is None and call.agent_leg:
                await self.ctx.control.hangup(call.agent_leg)
            if call.bridge_id and line is None:
                await self.ctx.control.destroy_bridge(call.bridge_id)
            await self.end(task.id, call.agent_id, TaskEvent.COMPLETE, "customer hung up",
                           task=task, agent=call.agent)
            return True
        return False

    # -- the agent's leg -------------------------------------------------------------------

    async def reach_agent(self, agent: Agent, task_id: str, caller_id: str,
                          call: Call | None = None, leg_id: str | None = None,
                          ) -> Session | None:
        """The agent on the line: its persistent line, or a new call answered in time."""
        line = self.lines.get(agent.id)
        if line is not None and agent.mode is AgentMode.PER_CALL:
            await self.retire_line(agent.id)  # the mode was switched: it applies from this task
            line = None
        if line is not None and not line.session.gone:
            return line.session
        kind = "agent-line" if agent.mode is AgentMode.PERSISTENT else "agent-leg"
        leg_id = leg_id or f"agent-{agent.id}-{next(_legs)}-{task_id[:8]}"
        if call is not None:
            call.agent_leg = leg_id
        session = await self._ring(agent, f"{kind},{agent.id},{task_id}", leg_id, caller_id)
        if session is None and call is not None:
            call.agent_leg = None
        if session is not None and agent.mode is AgentMode.PERSISTENT:
            await self.open_line(agent.id, session)
        return session

    async def _ring(self, agent: Agent, app_args: str, leg_id: str,
                    caller_id: str) -> Session | None:
        """Originate a call to the agent into our app; the session once answered, else None.
        A reach the policy refuses now (a changed policy, a record written into Redis) is
        never dialed: the agent is logged out, which puts its task back in line."""
        ctx = self.ctx
        try:
            reach = await check_agent_reach(ctx.pool, agent.reach, ctx.reach)
        except InvalidInput as refused:
            log.warning("agent %s: reach %r refused, not dialed; logged out: %s", agent.id,
                        agent.reach[:64], refused)
            await self.move_agent(agent.id, AgentEvent.LOGOUT)
            return None
        session = ctx.sessions.open(Session(leg_id, ctx.control, args=tuple(app_args.split(","))))
        timeout = ctx.agents.ring_timeout
        try:
            created = await ctx.control.originate(
                endpoint_for(reach, ctx.center.trunk), leg_id,
                app_args=app_args, caller_id=caller_id or None, timeout=int(timeout))
            if created is None:
                raise ChannelGone(leg_id)
            if await answered(session, timeout + 5) is None:
                await ctx.control.hangup(leg_id)
                raise ChannelGone(leg_id)
            return session
        except ChannelGone:
            ctx.sessions.close(leg_id)
            return None

    async def open_line(self, agent_id: str, session: Session) -> AgentLine:
        """Keep ``session`` as the agent's persistent line, in a bridge of its own."""
        bridge_id = f"line-{agent_id}"
        # dtmf_events: no native RTP bridging, so the agent's keys (end, follow-up) reach us.
        await self.ctx.bridges.ensure(bridge_id, "mixing,dtmf_events")
        await self.ctx.control.add_to_bridge(bridge_id, [session.channel_id])
        line = self.keep_line(agent_id, session)
        log.info("agent %s: persistent line %s up", agent_id, session.channel_id)
        return line

    def keep_line(self, agent_id: str, session: Session) -> AgentLine:
        """Watch ``session``, in the agent's bridge already, as its line (also a line a dead
        serve left: ari/reconcile.py)."""
        line = AgentLine(agent_id, session, f"line-{agent_id}")
        self.lines[agent_id] = line
        self.ctx.spawner.spawn(self._watch_line(line), f"line {agent_id}")
        return line

    async def retire_line(self, agent_id: str) -> None:
        line = self.lines.pop(agent_id, None)
        if line is not None:
            line.retiring = True
            await self.ctx.control.hangup(line.session.channel_id)
            await self.ctx.control.destroy_bridge(line.bridge_id)

    async def _watch_line(self, line: AgentLine) -> None:
        await line.session.hung_up.wait()
        self.ctx.sessions.close(line.session.channel_id)
        await self.ctx.control.destroy_bridge(line.bridge_id)
        if line.retiring:
            return
        self.lines.pop(line.agent_id, None)
        log.info("agent %s hung up the persistent line: logged out", line.agent_id)
        agent = await self.ctx.pool.get_agent(line.agent_id)
        if agent is not None and agent.task_id:
            call = self.ctx.calls.get(agent.task_id)
            if call is not None:
                await self.ctx.control.hangup(call.customer.channel_id)
        await self.move_agent(line.agent_id, AgentEvent.LOGOUT)

    # -- connecting and ending -------------------------------------------------------------

    async def whisper(self, leg: Session, media: list[str]) -> None:
        """Tell the agent what comes (only the agent hears it)."""
        if not self.ctx.agents.whisper:
            return
        try:
            await leg.play(media, interruptible=self.ctx.decline)
        except ChannelGone:
            return

    async def bridge(self, agent: Agent, task: Task, call: Call, leg: Session) -> None:
        """Join the customer to the agent: the agent's line bridge, or a new mixing bridge."""
        control = self.ctx.control
        line = self.lines.get(agent.id)
        customer = call.customer.channel_id
        # A live caller waits in its skill's holding bridge: adding it to another bridge
        # takes it out of that one first (Asterisk's addChannel departs the Stasis bridge a
        # channel is in; Asterisk 22.10.1), so no removeChannel request. Asterisk does that
        # only once the media queued on the channel has played: its position is cut short.
        await call.customer.stop_playing()
        # The call's bridge is set once the caller is in it: until then its holding loop
        # waits (ari/queue.py), and goes on if the bridge failed (``_back_on_hold``).
        if line is not None:
            await control.add_to_bridge(line.bridge_id, [customer])
            call.bridge_id = line.bridge_id
        else:
            bridge_id = f"call-{task.id}"
            # dtmf_events: a plain mixing bridge of two SIP channels goes native RTP and the
            # agent's keys (9 = follow-up) never reach the app (seen on 22.10.1).
            await self.ctx.bridges.ensure(bridge_id, "mixing,dtmf_events")
            await control.add_to_bridge(bridge_id, [customer, leg.channel_id])
            call.bridge_id = bridge_id
            self.ctx.spawner.spawn(self.watch_leg(call, leg), f"leg {leg.channel_id}")
        # As claimed and as last read: both moves in one round trip (store/pool.py)
        answered, connected = await self.ctx.pool.move_together(
            [AgentMove(agent.id, AgentEvent.ANSWER, known=agent),
             TaskMove(task.id, TaskEvent.CONNECT, known=task)], self.ctx.clock.now())
        for refused in (answered, connected):
            if isinstance(refused, AcdError):
                raise refused
        call.agent = cast(Agent, answered)
        await survey.record_served(self.ctx.survey, agent, task)
        log.info("task %s: agent %s connected to %s", task.id, agent.id, customer)
        self.ctx.spawner.spawn(followup_key.watch(self.ctx.follow_up, agent, task, call, leg),
                       f"follow-up key {task.id}")
        if line is not None:  # a persistent agent ends the call with a key, keeping its line
            self.ctx.spawner.spawn(end_key.watch(self.ctx.end_key, agent, task, call, line),
                                   f"end key {task.id}")

    async def _back_on_hold(self, agent: Agent, task: Task, call: Call, leg: Session) -> None:
        """Asterisk did not bridge a waiting caller to its agent (a request failed or got no
        answer in time): hang the agent's leg up (a persistent line stays), take the caller
        out of the bridge the late request may still put it in, and hold it again with its
        skill, where its loop goes on. Each step is sent even if one before it failed:
        Asterisk runs a request that got no answer in time later, in order
        (docs/architecture.md §7). The bridge's own error goes on to the dispatcher."""
        call.taken.clear()
        call.agent_id = call.agent_leg = call.bridge_id = None
        control, customer = self.ctx.control, call.customer.channel_id
        log.warning("task %s: caller %s not bridged to agent %s; back on hold", task.id,
                    customer, agent.id)

        async def attempt(step: Awaitable[object]) -> None:
            try:
                await step
            except AriRequestFailed as exc:
                log.warning("task %s: putting caller %s back on hold: %s", task.id, customer,
                            exc)

        line = self.lines.get(agent.id)
        if line is None:
            self.ctx.sessions.close(leg.channel_id)
            await attempt(control.hangup(leg.channel_id))
            await attempt(control.destroy_bridge(f"call-{task.id}"))
        else:
            await attempt(control.remove_from_bridge(line.bridge_id, customer))
        if not call.customer.gone:
            await attempt(self.ctx.bridges.hold(task.skill, customer))

    async def watch_leg(self, call: Call, leg: Session) -> None:
        """Per-call agent leg: when the agent hangs up, the customer's call ends too."""
        await leg.hung_up.wait()
        call.agent_leg = None  # gone: nothing left to hang up
        self.ctx.sessions.close(leg.channel_id)
        if not call.customer.gone and not await survey.agent_left(self.ctx.survey, call):
            await self.ctx.control.hangup(call.customer.channel_id)

    async def _missed(self, agent: Agent, task: Task, call: Call) -> None:
        call.taken.clear()
        call.agent_id = None
        if call.customer.gone:
            await self.end(task.id, agent.id, TaskEvent.ABANDON, "caller left while ringing")
            return
        log.info("task %s: agent %s did not answer; back in line", task.id, agent.id)
        # The store puts the task back with its place in the same step as the miss.
        await self.move_agent(agent.id, AgentEvent.NO_ANSWER)
        self.ctx.endings.after_wrap_up(agent.id)

    async def _hang_up_leg(self, agent: Agent, leg: Session) -> None:
        if agent.id not in self.lines:
            await self.ctx.control.hangup(leg.channel_id)

    async def end(self, task_id: str, agent_id: str, event: TaskEvent, outcome: str, *,
                  task: Task | None = None, agent: Agent | None = None) -> None:
        await self.ctx.endings.end(task_id, agent_id, event, outcome, task=task, agent=agent)

    async def _move_task(self, task_id: str, event: TaskEvent, outcome: str) -> None:
        await self.ctx.endings.move_task(task_id, event, outcome)

    async def move_agent(self, agent_id: str, event: AgentEvent) -> None:
        await self.ctx.endings.move_agent(agent_id, event)


@dataclass(frozen=True)
class AgentLogin:
    """What login from a phone uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    reach: ReachPolicy  # where agents may be dialed
    pins: PinPolicy
    connector: AgentConnector  # a persistent agent's login call becomes its line


async def agent_login(ctx: AgentLogin, session: Session) -> None:
    """An agent dials the login code: id and PIN by DTMF; the calling endpoint is the reach.

    A persistent agent's login call stays up as its line; a per-call agent is hung up.
    """
    await ctx.control.answer(session.channel_id)
    agent = await _authenticate(ctx, session)
    if agent is None:
        await session.play(["sound:vm-goodbye"])
        await ctx.control.hangup(session.channel_id)
        return
    reach = session.args[1] if len(session.args) > 1 and session.args[1] else ""
    reach = reach or _endpoint_of(session)
    now = ctx.clock.now()
    try:
        reach = await check_agent_reach(ctx.pool, reach,
                                        ctx.reach)
        if agent.state is not AgentState.LOGGED_OUT:
            await ctx.pool.move_agent(agent.id, AgentEvent.LOGOUT, now)
        await ctx.pool.move_agent(agent.id, AgentEvent.LOGIN, now, reach=reach)
    except AcdError as exc:
        log.warning("agent %s login refused: %s", agent.id, exc)
        await session.play(["sound:acdkit/failure"])
        await ctx.control.hangup(session.channel_id)
        return
    log.info("agent %s logged in from %s (%s)", agent.id, reach, agent.mode)
    await session.play(["sound:agent-loginok"])
    if agent.mode is AgentMode.PERSISTENT:
        await ctx.connector.open_line(agent.id, session)
        await session.hung_up.wait()
    else:
        await ctx.control.hangup(session.channel_id)


async def _authenticate(ctx: AgentLogin, session: Session) -> Agent | None:
    for _ in range(3):
        await session.play(["sound:agent-user"], interruptible=True)
        agent_id = await session.read_digits(max_digits=12, timeout=6.0)
        await session.play(["sound:agent-pass"], interruptible=True)
        pin = await session.read_digits(max_digits=12, timeout=6.0)
        agent = await ctx.pool.get_agent(agent_id) if agent_id.isdigit() else None
        if agent is None and agent_id:
            agent = await ctx.pool.get_agent(f"A{agent_id}")
        if agent is not None:
            checked = await verify_pin(ctx.pool, agent.id, pin, ctx.pins)
            if checked is PinOutcome.OK:
                return agent
            if checked is PinOutcome.LOCKED:
                log.warning("agent %s: login locked after too many wrong PINs", agent.id)
                break
        log.info("agent login failed for id %r", agent_id)
        await session.play(["sound:agent-incorrect"])
    return None


def _endpoint_of(session: Session) -> str:
    # Channel names look like "PJSIP/agent7-0000002a": the endpoint is before the last dash.
    name = session.channel_name
    return name.rsplit("-", 1)[0] if name.startswith("PJSIP/") else ""
