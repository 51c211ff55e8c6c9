"""One Redis subscription per process, fanned out to every page that streams updates.

The store publishes each audited change on the pool's ``changes`` channel
(``<kind> <id> <event>``; a script that makes many, a claim for many agents, publishes them in
one message, one per line). ``Hub.run`` holds the only subscription of this process; after a
short settle time it bumps ``version`` and wakes every ``Listener`` with the entities that
changed, so a burst of changes costs one render per page, not one per change. A listener
keeps only a set of names, never a backlog: a slow browser cannot make the process grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp_sse import EventSourceResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from acdkit.core.errors import Unavailable

log = logging.getLogger(__name__)
EVERYTHING = "*"  # what a listener is told after a reconnect: anything may have changed
_BACKOFF = (0.5, 1.0, 2.0, 5.0)


class TooManyClients(Unavailable):
    """Every live update slot of this process is taken."""


class Listener:
    """One streaming page: ``wait`` returns what changed since its last call."""

    def __init__(self) -> None:
        self._changed: set[str] = set()
        self._event = asyncio.Event()

    def notify(self, names: set[str]) -> None:
        self._changed |= names
        self._event.set()

    async def wait(self, timeout: float) -> set[str]:
        """The names of what changed (``kind:id``; ``*`` = anything), or an empty set when
        nothing did within ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()
        changed, self._changed = self._changed, set()
        return changed


class Hub:
    def __init__(self, redis: aioredis.Redis, channel: str, *, max_clients: int = 200,
                 settle: float = 0.1) -> None:
        self.redis = redis
        self.channel = channel
        self.max_clients = max_clients
        self.settle = settle
        self.version = 0  # bumped once per batch of changes: caches key on it
        self.listeners: set[Listener] = set()
        self.connected = asyncio.Event()

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[Listener]:
        """A listener for one stream; ``TooManyClients`` when all slots are taken."""
        if len(self.listeners) >= self.max_clients:
            raise TooManyClients(f"{self.max_clients} live pages already: try again later")
        listener = Listener()
        self.listeners.add(listener)
        try:
            yield listener
        finally:
            self.listeners.discard(listener)

    def publish(self, names: set[str]) -> None:
        """Wake every listener (also used by the pages after their own writes)."""
        self.version += 1
        for listener in list(self.listeners):
            listener.notify(names)

    async def run(self) -> None:
        """Subscribe and fan out until cancelled; reconnect with backoff when Redis goes."""
        failures = 0
        while True:
            try:
                await self._subscribed()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.connected.clear()
                delay = _BACKOFF[min(failures, len(_BACKOFF) - 1)]
                failures += 1
                log.warning("web events: Redis subscription lost (%s); again in %.1f s",
                            exc, delay)
                await asyncio.sleep(delay)

    async def _subscribed(self) -> None:
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self.connected.set()
            self.publish({EVERYTHING})  # what happened while we were not listening
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    continue
                names = _names(message["data"])
                await asyncio.sleep(self.settle)  # gather the rest of a burst
                while (more := await pubsub.get_message(timeout=0)) is not None:
                    names |= _names(more["data"])
                self.publish(names)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def _names(data: object) -> set[str]:
    """``task:<id>`` or ``agent:<id>`` of each ``<kind> <id> <event>`` line of a message."""
    text = data.decode() if isinstance(data, bytes) else str(data)
    names = set()
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        names.add(f"{kind}:{rest.partition(' ')[0]}")
    return names


Render = Callable[[set[str]], Awaitable[str | None]]


async def stream(request: web.Request, hub: Hub, event: str, render: Render,
                 idle: float = 15.0) -> web.StreamResponse:
    """Serve one page's SSE stream: ``render(changed)`` gives the fragment for ``event`` (None:
    not this page's business); only a fragment that differs from the last one is sent.
    ``idle`` seconds without a change re-render anyway (clock-driven figures)."""
    async with hub.listen() as listener:
        resp = EventSourceResponse(ping_interval=15)
        try:
            await resp.prepare(request)
            async with resp:
                last = await render({EVERYTHING})
                if last is not None:
                    await resp.send(last, event=event)
                while resp.is_connected():
                    changed = await listener.wait(idle)
                    fragment = await render(changed or {EVERYTHING})
                    if fragment is not None and fragment != last:
                        await resp.send(fragment, event=event)
                        last = fragment
        except ConnectionResetError:
            pass  # the browser left (page closed or reloaded): normal
        return resp
