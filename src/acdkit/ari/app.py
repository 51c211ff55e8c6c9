"""The Stasis app: one connection to ARI, each channel's events to its flow, and a catch-all
that never strands a caller.

``StasisStart`` args choose the flow: ``inbound,<entry>`` (the IVR and the queue),
``agent-login`` (an agent signs in from a phone). Channels we originate (agent legs) have a
session before they enter the app, so their events go to the flow that rang them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from acdkit.ari import events as ev
from acdkit.ari.agents import AgentConnector, AgentLogin, Connecting, agent_login
from acdkit.ari.bridges import Bridges
from acdkit.ari.callback_offer import LoggedIn, OverflowOffer
from acdkit.ari.calls import Calls, Lines
from acdkit.ari.choose_agent import ChooseAgent
from acdkit.ari.client import AriClient
from acdkit.ari.control import AriControl
from acdkit.ari.dialback import Commands, DialBacks, run_commands
from acdkit.ari.end_key import EndKey
from acdkit.ari.endings import Endings
from acdkit.ari.followup_key import FollowUpKey
from acdkit.ari.my_requests import MyRequests
from acdkit.ari.queue import Queueing, serve_caller, serve_queued
from acdkit.ari.ratings_line import RatingsLine, ratings_line
from acdkit.ari.reconcile import (
    RESETTLE_EVERY,
    Reconciling,
    adopt_strays,
    reconcile,
    resettle,
)
from acdkit.ari.reply_delivery import ReplyCalls
from acdkit.ari.session import ChannelGone, Session, Sessions
from acdkit.ari.snoop import Snooping
from acdkit.ari.spawner import Spawner
from acdkit.ari.survey import Survey
from acdkit.ari.voice_request import VoiceRequests, direct_request
from acdkit.ari.work_order import WorkOrders, work_order
from acdkit.config import Settings
from acdkit.core import ivr
from acdkit.core.agents import Agent
from acdkit.core.errors import AcdError
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskKind
from acdkit.dialplan_vars import ARG_RATINGS, FAILURE_CONTEXT
from acdkit.policies import pin_policy, reach_policy
from acdkit.ports import Clock, JobQueue, Messenger
from acdkit.services.callbacks import enqueue_dial_back
from acdkit.services.standby import node_id
from acdkit.stopping import stop_loops
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.ratings import rating_store

log = logging.getLogger(__name__)
LOOPS_STOP = 2.0  # seconds the command and resettle loops get to end once ARI stepped down


class StasisApp:
    """The connection loop. It builds each flow's context once, from the parts it is handed,
    and gives each flow only its own: no flow sees the app."""

    def __init__(self, settings: Settings, client: AriClient, pool: Pool, clock: Clock,
                 callbacks: CallbackStore, jobs: JobQueue, policy: NumberPolicy,
                 messenger: Messenger | None = None) -> None:
        self.callbacks = callbacks
        self.jobs = jobs
        self.client = client
        self.control = AriControl(client)
        self.ratings = rating_store(pool, settings.ratings)
        self.sessions = Sessions()
        self.calls = Calls()
        self.lines: Lines = {}
        self.spawner = Spawner()
        self.bridges = Bridges(self.control, settings.queue.music_class)
        self.endings = Endings(pool, clock, self.spawner, settings.agents.wrap_up,
                               settings.agents.max_misses)
        self.survey = Survey(self.control, pool, clock, self.ratings, settings.ratings,
                             self.sessions, self.lines, self.endings)
        reach = reach_policy(settings, policy)
        self.connector = AgentConnector(Connecting(
            self.control, pool, clock, self.sessions, self.calls, self.lines, self.spawner,
            self.bridges, self.endings, settings.center, settings.agents, reach,
            settings.ratings.decline, self.survey,
            FollowUpKey(self.control, pool, clock, policy, settings.outbound),
            EndKey(settings.agents.end_key, self.control, pool, clock, self.spawner,
                   self.endings, self.survey)))
        self.choose_agent = ChooseAgent(pool, clock, self.ratings, settings.ratings)
        self.ratings_line = RatingsLine(self.control, pool, clock, self.ratings,
                                        settings.ratings, pin_policy(settings), self.survey)
        self.voice = VoiceRequests(self.control, pool, clock, jobs, policy, settings.requests,
                                   self.bridges)
        self.offer = OverflowOffer(self.control, pool, clock, callbacks, policy,
                                   settings.center, settings.overflow,
                                   settings.callbacks.confirm_by_message, messenger,
                                   self.spawner, self.voice, LoggedIn(pool))
        self.work_orders = WorkOrders(self.control, pool, clock, jobs, self.sessions,
                                      self.connector, self.endings, settings.center.caller_id,
                                      settings.requests)
        self.dial_backs = DialBacks(self.control, pool, clock, callbacks, self.sessions,
                                    self.calls, self.spawner, self.connector, self.endings,
                                    settings.center, settings.agents, settings.requests,
                                    node_id(settings))
        self.commands = Commands(
            callbacks, self.spawner, self.dial_backs,
            ReplyCalls(self.control, pool, clock, callbacks, policy, self.sessions,
                       settings.center, settings.agents, settings.requests),
            Snooping(self.control, pool, self.sessions, self.calls, self.lines, self.bridges,
                     reach, settings.center, settings.agents.ring_timeout))
        self.my_requests = MyRequests(self.control, pool, clock, callbacks, self.ratings,
                                      policy, settings.center, settings.requests,
                                      settings.ratings.key_timeout, pin_policy(settings),
                                      self.offer)
        self.login = AgentLogin(self.control, pool, clock, reach, pin_policy(settings),
                                self.connector)
        menus = {name: ivr.menu_from_config(name, data) for name, data in settings.ivr.items()}
        self.queueing = Queueing(self.control, pool, clock, policy, self.calls, self.bridges,
                                 self.connector, menus, settings.queue, settings.overflow,
                                 settings.outbound, self.offer, self.my_requests,
                                 self.choose_agent, node_id(settings))
        self.started_at = clock.now()  # holds older than this may be a dead serve's
        self.reconciling = Reconciling(client, self.control, pool, clock, callbacks,
                                       self.sessions, self.calls, self.spawner, self.bridges,
                                       self.connector, self.endings, self.dial_backs,
                                       self.started_at, self._adopt_caller, self._start_flow,
                                       node_id(settings))
        self.reconciled = asyncio.Event()  # set once ARI and the pool agree (ari/reconcile.py)

    # -- wiring ----------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self.spawner.spawn(coro, name)

    async def run(self) -> None:
        """Serve ARI events and the dial-back commands of the jobs until ARI steps down."""
        loops = [asyncio.create_task(run_commands(self.commands), name="commands"),
                 asyncio.create_task(self._resettle(), name="resettle")]
        try:
            await self.client.run(self.on_event)
        finally:
            await stop_loops(loops, LOOPS_STOP)

    async def _resettle(self) -> None:
        """Every ``RESETTLE_EVERY`` s, settle holds whose end a Redis failover lost and
        adopt callers a failed reconcile left stranded (ari/reconcile.py ``resettle``,
        ``adopt_strays``); an outage only skips a round."""
        strays: frozenset[str] = frozenset()
        while True:
            await asyncio.sleep(RESETTLE_EVERY)
            if not self.reconciled.is_set():
                continue
            try:
                await resettle(self.reconciling, self.reconciling.clock.now() - RESETTLE_EVERY)
                strays = await adopt_strays(self.reconciling, strays)
            except AcdError as exc:
                log.warning("resettle: %s", exc)

    # -- events ----------------------------------------------------------------------------

    async def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.Connected):
            self.bridges.forget()  # Asterisk may have restarted: made again lazily
            self.reconciled.clear()
            self.spawn(self._reconcile(), "reconcile")
            return
        channel_id = ev.channel_id(event)
        if channel_id is None:
            return
        if isinstance(event, ev.StasisStart):
            log.debug("StasisStart %s args=%s from %s", channel_id, ",".join(event.args),
                      event.channel.caller_number or "?")
            if self.sessions.get(channel_id) is None:
                self._start_flow(event)
                return
        if isinstance(event, ev.StasisEnd):
            log.debug("StasisEnd %s", channel_id)
        self.sessions.route(channel_id, event)

    def _start_flow(self, event: ev.StasisStart) -> None:
        channel = event.channel
        args = tuple(event.args)
        session = self.sessions.open(Session(channel.id, self.control, args=args,
                                             caller_number=channel.caller_number,
                                             channel_name=channel.name))
        kind = args[0] if args else "inbound"
        if kind == "inbound":
            entry = args[1] if len(args) > 1 else "main"
            flow: Coroutine[Any, Any, None] = serve_caller(self.queueing, session, entry)
        elif kind == "agent-login":
            flow = agent_login(self.login, session)
        elif kind == "voice-request":
            flow = direct_request(self.voice, session, args[1] if len(args) > 1 else "sales")
        elif kind == ARG_RATINGS:
            flow = ratings_line(self.ratings_line, session)
        else:
            log.warning("channel %s entered with unknown args %s", channel.id, args)
            flow = self._unknown(session)
        self.spawn(self._never_strand(session, flow), f"channel {channel.id}")

    def _adopt_caller(self, session: Session, task: Task) -> None:
        """Run the inbound flow of a caller a dead serve left (ari/reconcile.py), with its
        task and place, never stranding it."""
        self.sessions.open(session)
        flow = serve_queued(self.queueing, session, task, adopted=True)
        self.spawn(self._never_strand(session, flow), f"channel {session.channel_id}")

    async def _never_strand(self, session: Session, flow: Coroutine[Any, Any, None]) -> None:
        """Run a channel's flow; on any failure send the caller to the failure context."""
        try:
            await flow
        except ChannelGone:
            pass
        except Exception as exc:
            level = logging.WARNING if isinstance(exc, AcdError) else logging.ERROR
            log.log(level, "flow of %s failed: %s", session.channel_id, exc,
                    exc_info=not isinstance(exc, AcdError))
            if not session.gone:
                await self._to_failure(session.channel_id)
        finally:
            self.sessions.close(session.channel_id)

    async def _to_failure(self, channel_id: str) -> None:
        try:
            moved = await self.control.continue_in_dialplan(channel_id, FAILURE_CONTEXT, "s", 1)
        except AcdError:
            moved = False
        if not moved:
            await self.control.hangup(channel_id)

    async def _unknown(self, session: Session) -> None:
        await self._to_failure(session.channel_id)

    async def _reconcile(self) -> None:
        """After a reconnect: flows whose channel did not survive the drop learn it now."""
        try:
            for session in self.sessions.all():
                if await self.control.get_channel(session.channel_id) is None:
                    session.feed(ev.ChannelDestroyed(channel=ev.Channel(id=session.channel_id)))
            await reconcile(self.reconciling)  # what a dead serve left: held tasks, callers
        finally:
            self.reconciled.set()

    # -- holding bridges and wrap-up -------------------------------------------------------


    async def on_reserved(self, agent: Agent, task: Task) -> None:
        """The dispatcher reserved ``agent`` for ``task``: connect a live call here; give a
        voice request's work order to the agent; hand a callback or an outbound task to its
        ``dial_back`` job (which asks us back to dial, agent first)."""
        if task.kind is TaskKind.CALL:
            # A caller a dead serve left is adopted by the reconciler: wait for it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.reconciled.wait(), 15.0)
            await self.connector.connect(agent, task)
            return
        if task.kind is TaskKind.VOICE_REQUEST:
            self.spawn(work_order(self.work_orders, agent, task), f"work order {task.id}")
            return
        assert task.kind in (TaskKind.CALLBACK, TaskKind.OUTBOUND), task.kind
        job = await enqueue_dial_back(self.callbacks, self.jobs, task.id)
        log.info("task %s: agent %s reserved, job %s queued", task.id, agent.id, job)

