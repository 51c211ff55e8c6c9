"""Wiring: adapters to the core, by hand. Accepts fakes for tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from acdkit.ari.client import AriClient
from acdkit.config import Settings
from acdkit.core.agents import AgentEvent, AgentState
from acdkit.core.errors import AcdError
from acdkit.policies import number_policy, priority_rules
from acdkit.ports import Clock, JobQueue, SystemClock
from acdkit.store.connection import connect, redact
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)


def ari_client(settings: Settings) -> AriClient:
    a = settings.ari
    # Backoff capped at 5 s: after an Asterisk restart calls come back within seconds.
    return AriClient(a.url, a.username, a.password.reveal(), a.app,
                     request_timeout=a.request_timeout, transport=a.transport,
                     backoff_max=5.0)


async def open_pool(settings: Settings) -> Pool:
    """The pool on the configured Redis (``RedisUnavailable`` when it does not answer)."""
    redis = await connect(settings.redis.url)
    return Pool(redis, priority_rules(settings), prefix=settings.redis.prefix)


async def serve(settings: Settings, clock: Clock | None = None,
                jobs: JobQueue | None = None) -> None:
    """Run the Stasis app and the dispatcher until SIGTERM/SIGINT (or until another process
    takes the ARI app over)."""
    from acdkit.ari.app import StasisApp
    from acdkit.dispatch import Dispatcher
    from acdkit.jobqueue import RqJobQueue
    from acdkit.jobs import callback_store
    from acdkit.messaging import messenger_for

    clock = clock or SystemClock()
    pool = await open_pool(settings)
    client = ari_client(settings)
    app = StasisApp(settings, client, pool, clock, callback_store(pool, settings),
                    jobs or RqJobQueue(settings.redis.url), number_policy(settings))
    app.messenger = messenger_for(settings)
    dispatcher = Dispatcher(pool, priority_rules(settings), clock, app.on_reserved,
                            sweep_interval=settings.dispatch.sweep_interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runners = [asyncio.create_task(app.run(), name="ari"),
               asyncio.create_task(dispatcher.run(), name="dispatcher"),
               asyncio.create_task(housekeeping(pool, settings, clock), name="housekeeping"),
               asyncio.create_task(voice_media(pool, settings), name="voice-media")]
    log.info("acdkit serve: app %s on %s", settings.ari.app, redact(settings.ari.url))
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*runners, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in [*runners, stopper]:
        task.cancel()
    with contextlib.suppress(Exception):
        await client.close()
    await pool.close()
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


async def voice_media(pool: Pool, settings: Settings) -> None:
    """Serve voice-request audio to Asterisk over HTTP (ari/media.py)."""
    from acdkit.ari.media import run_media
    from acdkit.store.requests import RequestStore

    await run_media(RequestStore(pool, settings.requests))


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
