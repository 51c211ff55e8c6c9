"""Wiring: adapters to the core, by hand. Accepts fakes for tests."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from dataclasses import replace
from types import MappingProxyType

from acdkit.config import Settings
from acdkit.core.agents import AgentEvent, AgentState
from acdkit.core.dtmf import BusinessHours
from acdkit.core.errors import AcdError, ConfigError
from acdkit.core.numbers import NumberPolicy, normalize
from acdkit.core.routing import PriorityHook, PriorityRules
from acdkit.core.tasks import TaskKind
from acdkit.ports import Clock, SystemClock

log = logging.getLogger(__name__)


def priority_rules(settings: Settings) -> PriorityRules:
    """The routing rules from the ``[priority]`` settings, with the user's hook loaded."""
    p = settings.priority
    return PriorityRules(
        base=MappingProxyType({TaskKind.CALL: p.base_call, TaskKind.CALLBACK: p.base_callback,
                               TaskKind.VOICE_REQUEST: p.base_voice_request,
                               TaskKind.OUTBOUND: p.base_outbound}),
        aging_per_minute=p.aging_per_minute,
        rating_weight=p.rating_weight,
        preferred_agent_weight=p.preferred_agent_weight,
        vip_attribute=p.vip_attribute,
        vip_weight=p.vip_weight,
        hook=load_hook(p.hook) if p.hook else None,
    )


def number_policy(settings: Settings) -> NumberPolicy:
    """The dialing policy from ``[center]`` and ``[numbers]``."""
    n = settings.numbers
    region = settings.center.default_region
    policy = NumberPolicy(
        default_region=region,
        center_timezone=settings.center.timezone,
        allowed_countries=frozenset(_csv(n.allowed_countries)) or frozenset({region}),
        allowed_prefixes=tuple(_csv(n.allowed_prefixes)),
        max_pending_per_number=n.max_pending_per_number,
    )
    if n.calling_hours:
        policy = replace(policy, calling_hours=BusinessHours.parse(n.calling_hours,
                                                                    "numbers.calling_hours"))
    dnc = frozenset(normalize(raw, policy) for raw in _csv(n.do_not_call))
    return replace(policy, dnc=dnc)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def load_hook(path: str) -> PriorityHook:
    """Import ``package.module:function``; raise ``ConfigError`` naming ``priority.hook``."""
    module_name, _, attr = path.partition(":")
    try:
        hook = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError("priority.hook", f"cannot load {path!r}: {exc}") from None
    if not callable(hook):
        raise ConfigError("priority.hook", f"{path!r} is not callable")
    return hook  # type: ignore[no-any-return]


def ari_client(settings: Settings):  # type: ignore[no-untyped-def]
    from acdkit.ari.client import AriClient

    a = settings.ari
    return AriClient(a.url, a.username, a.password.reveal(), a.app,
                     request_timeout=a.request_timeout, transport=a.transport)


async def open_pool(settings: Settings, clock: Clock | None = None):  # type: ignore[no-untyped-def]
    from acdkit.store.connection import connect
    from acdkit.store.pool import Pool

    redis = await connect(settings.redis.url)
    return Pool(redis, priority_rules(settings), prefix=settings.redis.prefix)


async def serve(settings: Settings, clock: Clock | None = None) -> None:
    """Run the Stasis app and the dispatcher until SIGTERM/SIGINT."""
    from acdkit.ari.app import StasisApp
    from acdkit.dispatch import Dispatcher

    clock = clock or SystemClock()
    pool = await open_pool(settings, clock)
    client = ari_client(settings)
    app = StasisApp(settings, client, pool, clock)
    dispatcher = Dispatcher(pool, priority_rules(settings), clock, app.on_reserved,
                            sweep_interval=settings.dispatch.sweep_interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runners = [asyncio.create_task(app.run(), name="ari"),
               asyncio.create_task(dispatcher.run(), name="dispatcher"),
               asyncio.create_task(housekeeping(pool, settings, clock), name="housekeeping")]
    log.info("acdkit serve: app %s on %s, redis %s", settings.ari.app, settings.ari.url,
             settings.redis.url.split("@")[-1])
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*runners, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in [*runners, stopper]:
        task.cancel()
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception():
            raise task.exception()  # type: ignore[misc]
    with contextlib.suppress(Exception):
        await client.close()


async def housekeeping(pool, settings: Settings, clock: Clock) -> None:  # type: ignore[no-untyped-def]
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
