"""``acdkit agi``: the FastAGI server, and (unless turned off) the AMI watcher and the
dialplan-mode dial-back, in one process until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import replace
from functools import partial

from acdkit.agi.routes import ROUTES, Route, RouteContext, handlers, voice_request
from acdkit.agi.server import AgiServer
from acdkit.ami.dialback import QueueDialBack
from acdkit.ami.link import AmiLink
from acdkit.ami.members import MemberBoard
from acdkit.ami.originate import DialPlan
from acdkit.ami.watcher import Watcher
from acdkit.ari.client import AriClient
from acdkit.config import Settings
from acdkit.core.errors import AcdError, AriRequestFailed
from acdkit.jobqueue import RqJobQueue
from acdkit.jobs import callback_store, dial_back_of
from acdkit.policies import number_policy
from acdkit.ports import Clock, SystemClock
from acdkit.store.primary import primary_of
from acdkit.store.ratings import rating_store

log = logging.getLogger(__name__)


async def run_agi(settings: Settings, *, with_ami: bool | None = None,
                  clock: Clock | None = None) -> None:
    """Serve until a signal; ``with_ami`` overrides ``agi.ami``."""
    from acdkit.bootstrap import ari_client, open_pool

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
        for task in runners:
            task.cancel()
        if dial_back is not None:
            await dial_back.close()
        if link is not None:
            link.close()
        with contextlib.suppress(Exception):
            await ari.close()
        jobs.close()
        with contextlib.suppress(Exception):
            await pool.close()


def served_routes(settings: Settings) -> tuple[Route, ...]:
    """The routes ``settings`` turn on: ``voice-request`` only with ``overflow.voice_requests``.
    A route left out is refused like an unknown one: ACDKIT_STATUS=failed."""
    if settings.overflow.voice_requests:
        return ROUTES
    log.info("FastAGI: voice-request is off (overflow.voice_requests = false)")
    return tuple(route for route in ROUTES if route is not voice_request)


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


async def fetch_recording(ari: AriClient, name: str) -> bytes | None:
    """A recording RECORD FILE stored, over ARI HTTP (deleted once fetched); None if none."""
    path = f"recordings/stored/{name}"
    try:
        audio = await ari.download(f"{path}/file")
    except AriRequestFailed as exc:
        if exc.status == 404:
            return None
        raise
    with contextlib.suppress(AcdError):
        await ari.request("DELETE", path, ok_statuses=(404,))
    return audio


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
