"""Wiring: adapters to the core, by hand. Accepts fakes for tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from functools import partial

from aiohttp import web as aioweb

from acdkit.agi.context import RouteContext
from acdkit.agi.routes import handlers, served_routes
from acdkit.agi.server import AgiServer
from acdkit.ami.dialback import QueueDialBack
from acdkit.ami.link import AmiLink
from acdkit.ami.originate import DialPlan
from acdkit.ami.watcher import Watcher
from acdkit.ari.app import StasisApp
from acdkit.ari.client import AriClient
from acdkit.ari.events import HANDLED
from acdkit.ari.media import run_media
from acdkit.ari.recordings import fetch_recording
from acdkit.config import Settings
from acdkit.core.agents import AgentEvent, AgentState
from acdkit.core.errors import AcdError, ConfigError, LeaseLost
from acdkit.core.members import MemberBoard
from acdkit.dispatch import Dispatcher
from acdkit.httplimits import HttpLimits, LimitedListener
from acdkit.jobqueue import BackgroundJobQueue, RqJobQueue
from acdkit.limits import RateLimitedLog, raise_fd_limit
from acdkit.loopwatch import watch_loop
from acdkit.messaging import messenger_for
from acdkit.policies import number_policy, priority_rules
from acdkit.ports import Clock, JobQueue, SystemClock
from acdkit.queue_log_feed import QueueLogFeed
from acdkit.services.callbacks import callback_store
from acdkit.services.dial_back import dial_back_of
from acdkit.services.pools import open_pool as open_pool  # the wiring opens it here too
from acdkit.services.standby import LeaseKeeper, NoLease, keeper_of, node_id
from acdkit.stopping import stop_loops
from acdkit.store.connection import redact
from acdkit.store.pool import Pool
from acdkit.store.primary import primary_of
from acdkit.store.ratings import rating_store
from acdkit.store.requests import RequestStore
from acdkit.web import metrics
from acdkit.web.app import build_app, tls_context

log = logging.getLogger(__name__)
say = RateLimitedLog(log)
RESTART_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before a failed loop starts again
FLOWS_STOP = 3.0  # seconds the flows get to end when serve stops, before the lease is given up


def ari_client(settings: Settings) -> AriClient:
    a = settings.ari
    # Backoff capped at 5 s: after an Asterisk restart calls come back within seconds.
    return AriClient(a.url, a.username, a.password.reveal(), a.app,
                     request_timeout=a.request_timeout, transport=a.transport,
                     backoff_max=5.0, events=HANDLED)


async def serve(settings: Settings, clock: Clock | None = None,
                jobs: JobQueue | None = None) -> None:
    """Run the Stasis app and the dispatcher until SIGTERM/SIGINT (or until another process
    takes the ARI app over), once this process holds its node's lease: until then it waits
    as a standby (docs/standby.md). Raises ``LeaseLost`` when it loses the lease."""
    raise_fd_limit()
    pool = await open_pool(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    keeper = keeper_of(pool, settings)
    try:
        if await keeper.acquire(stop) and \
                await _serve_active(settings, pool, clock or SystemClock(), jobs, keeper, stop):
            await keeper.release()  # stopped by a signal or replaced: the standby goes on
    finally:
        await pool.close()


async def _hold(keeper: LeaseKeeper | NoLease) -> None:
    """Renew the lease; once it is lost, stop acting *at once*: exit without running any
    flow's clean-up, which would write to the pool or to Asterisk after the lease could
    have passed to a standby. The kernel closes the ARI WebSocket and the Redis sockets;
    the calls stay in Asterisk for the new holder to adopt (docs/standby.md)."""
    try:
        await keeper.keep()
    except LeaseLost as lost:
        log.critical("%s", lost)
        logging.shutdown()
        os._exit(lost.exit_code)


async def _serve_active(settings: Settings, pool: Pool, clock: Clock, jobs: JobQueue | None,
                        keeper: LeaseKeeper | NoLease, stop: asyncio.Event) -> bool:
    """Serve while this process holds the lease; True when every flow ended before it
    returned (the lease may then be given up at once)."""
    client = ari_client(settings)
    # RQ's client is synchronous: enqueue from a thread, so a stalled Redis never stalls calls.
    job_queue: JobQueue = jobs if jobs is not None else BackgroundJobQueue(
        RqJobQueue(primary_of(settings.redis), socket_timeout=5.0))
    app = StasisApp(settings, client, pool, clock, callback_store(pool, settings),
                    job_queue, number_policy(settings), messenger_for(settings))
    dispatcher = Dispatcher(pool, priority_rules(settings), clock, app.on_reserved,
                            sweep_interval=settings.dispatch.sweep_interval,
                            node=node_id(settings))
    # Only the Stasis app ends serve (another process took the app over; a lost lease ends
    # the process itself: _hold); the other loops start again after a failure: one bad
    # record must not stop the center.
    lease = asyncio.create_task(_hold(keeper), name="lease")
    runners = [lease,
               asyncio.create_task(app.run(), name="ari"),
               asyncio.create_task(supervised("dispatcher", dispatcher.run), name="dispatcher"),
               asyncio.create_task(supervised("housekeeping", lambda: housekeeping(
                   pool, settings, clock)), name="housekeeping"),
               asyncio.create_task(supervised("voice-media", lambda: voice_media(
                   pool, settings, client.requests, client.events)), name="voice-media"),
               asyncio.create_task(supervised("loop-watch", watch_loop), name="loop-watch")]
    if settings.kpis.queue_log or settings.kpis.queue_log_sqlite:
        feed = QueueLogFeed(pool, settings.kpis)
        started = clock.now()
        runners.append(asyncio.create_task(supervised("queue-log", lambda: feed.run(started)),
                                           name="queue-log"))
    log.info("acdkit serve: app %s on %s", settings.ari.app, redact(settings.ari.url))
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*runners, stopper], return_when=asyncio.FIRST_COMPLETED)
    # The lease is renewed until the flows ended: they still act. The loops end before the
    # pool closes under them (a loop that met the closing pool instead of its cancellation
    # would take that for an outage and go on): stopping.py.
    await stop_loops([task for task in [*runners, stopper] if task is not lease], FLOWS_STOP)
    with contextlib.suppress(Exception):
        await client.close()
    ended = all(await asyncio.gather(app.spawner.stop(FLOWS_STOP), dispatcher.stop(FLOWS_STOP)))
    lease.cancel()
    if isinstance(job_queue, BackgroundJobQueue):
        await asyncio.to_thread(job_queue.close)
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    return ended


async def supervised(name: str, loop: Callable[[], Awaitable[None]],
                     backoff: tuple[float, ...] = RESTART_BACKOFF) -> None:
    """Run ``loop()`` until cancelled, starting it again after a backoff whenever it ends
    or fails (logged, rate-limited); the backoff starts over after a minute of running."""
    failures = 0
    clock = asyncio.get_running_loop().time
    while True:
        started = clock()
        try:
            await loop()
            say.error(f"{name} ended", "%s: ended; starting it again", name)
        except Exception:
            say.error(f"{name} failed", "%s: failed; starting it again", name, exc_info=True)
        failures = 0 if clock() - started > 60 else failures + 1
        await asyncio.sleep(backoff[min(failures, len(backoff)) - 1] if failures else 0.0)


async def voice_media(pool: Pool, settings: Settings,
                      ari_requests: Mapping[tuple[str, str], int] | None = None,
                      ari_events: Mapping[str, int] | None = None) -> None:
    """Serve voice-request audio to Asterisk over HTTP (ari/media.py), and ``/metrics``
    on the same listener (web/metrics.py), with the ARI client's request and event counts."""
    extra = (metrics.routes(pool, settings, ari_requests, ari_events) if settings.kpis.metrics
             else [])
    await run_media(RequestStore(pool, settings.requests), extra)


async def housekeeping(pool: Pool, settings: Settings, clock: Clock) -> None:
    """End wrap-ups that outlived their time (a serve that died mid wrap-up leaves them)."""
    while True:
        await asyncio.sleep(max(1.0, settings.agents.wrap_up / 2))
        now = clock.now()
        try:
            for agent in await pool.list_agents():
                if agent.state is AgentState.WRAP_UP and \
                        now - agent.state_since > settings.agents.wrap_up + 2:
                    await pool.move_agent(agent.id, AgentEvent.WRAPPED, now)
        except AcdError as exc:
            log.warning("housekeeping: %s", exc)


async def web(settings: Settings, clock: Clock | None = None,
              jobs: JobQueue | None = None) -> None:
    """Serve the pages (web/) until SIGTERM/SIGINT. Listen/whisper/barge reach Asterisk as
    commands that ``serve`` runs (web/supervisor.py): this process holds no ARI client."""

    host, _, port = settings.web.listen.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("web.listen", f"expected HOST:PORT, got {settings.web.listen!r}")
    pool = await open_pool(settings)
    own = RqJobQueue(primary_of(settings.redis)) if jobs is None else None
    queue = jobs or own
    assert queue is not None
    app = build_app(settings, pool, clock or SystemClock(), queue, number_policy(settings),
                    callback_store(pool, settings))
    bounds = HttpLimits(settings.web.max_connections, settings.web.header_timeout,
                        streams=("/stream",))
    runner = aioweb.AppRunner(app, **LimitedListener.runner_args(bounds))  # type: ignore[arg-type]
    listener = LimitedListener(runner, bounds, "web")
    app.middlewares.append(listener.middleware)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server: asyncio.Server | None = None
    try:
        server = await listener.start(host.strip("[]") or "127.0.0.1", int(port),
                                      ssl=tls_context(settings))
        scheme = "https" if settings.web.tls_cert else "http"
        log.info("acdkit web: %s://%s/wallboard", scheme, settings.web.listen)
        await stop.wait()
    finally:
        if server is not None:
            server.close()
        await runner.cleanup()
        if own is not None:
            own.close()
        await pool.close()


# -- acdkit agi: dialplan mode (FastAGI routes, the AMI watcher, dial-back into Queue()) ------


async def run_agi(settings: Settings, *, with_ami: bool | None = None,
                  clock: Clock | None = None) -> None:
    """Serve until a signal; ``with_ami`` overrides ``agi.ami``."""
    clock = clock or SystemClock()
    pool = await open_pool(settings)
    store = callback_store(pool, settings)
    numbers = number_policy(settings)
    board = MemberBoard()
    ratings = rating_store(pool, settings.ratings)
    jobs = RqJobQueue(primary_of(settings.redis))
    # HTTP only: the routes fetch a recording now and then; no WebSocket, no Stasis app.
    ari = ari_client(replace(settings, ari=replace(settings.ari, transport="http")))
    ctx = RouteContext(settings, pool, store, numbers, clock, ratings, None, jobs,
                       partial(fetch_recording, ari))
    server = AgiServer(handlers(ctx, served_routes(settings)), settings.agi.host,
                       settings.agi.port, header_timeout=settings.agi.header_timeout,
                       max_connections=settings.agi.max_connections)
    runners: list[asyncio.Task[None]] = []
    link: AmiLink | None = None
    dial_back: QueueDialBack | None = None
    if settings.agi.ami if with_ami is None else with_ami:
        ctx.members = board
        link, dial_back = _ami(settings, ctx, board)
        await link.start()
        runners.append(asyncio.create_task(dial_back.run(), name="dial-back"))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("acdkit agi: stopping")
        await server.close()
        await stop_loops(runners, FLOWS_STOP)
        if dial_back is not None:
            await dial_back.close()
        if link is not None:
            link.close()
        with contextlib.suppress(Exception):
            await ari.close()
        jobs.close()
        with contextlib.suppress(Exception):
            await pool.close()


def _ami(settings: Settings, ctx: RouteContext,
         board: MemberBoard) -> tuple[AmiLink, QueueDialBack]:
    agi = settings.agi
    watcher = Watcher(ctx.pool, ctx.numbers, ctx.clock, board,
                      ctx.ratings if agi.ratings else None, agi.follow_up_skill,
                      agi.abandon_min_wait)
    link = AmiLink(settings.ami, watcher.on_event, action_timeout=settings.ami.action_timeout)

    def logged_in() -> None:  # members as they are now: QueueStatus lists them all
        board.clear()
        asyncio.get_running_loop().create_task(_queue_status(link, watcher))

    link.on_login_hook = logged_in
    plan = DialPlan(settings.center.trunk, settings.center.caller_id, agi.callback_priority,
                    agi.dial_timeout)
    dial_back = QueueDialBack(link, board, dial_back_of(ctx.callbacks, settings, ctx.clock),
                              plan, agent_first=agi.agent_first)
    watcher.forward.append(dial_back.on_event)
    return link, dial_back


async def _queue_status(link: AmiLink, watcher: Watcher) -> None:
    """Ask for every queue's members; panoramisk hands the reply's events (QueueMember...)
    to the action, not to the event handlers, so feed them to the watcher here."""
    try:
        reply = await link.action({"Action": "QueueStatus"})
    except Exception as err:  # the next login asks again
        log.warning("AMI QueueStatus failed: %s", err)
        return
    for message in reply if isinstance(reply, list) else [reply]:
        watcher.on_event(message)
    log.info("AMI: queues %s", ", ".join(
        f"{q} ({len(watcher.board.free(q))}/{len(watcher.board.members(q))} free)"
        for q in sorted(watcher.board.queues())) or "none")
