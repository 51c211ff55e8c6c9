"""The Redis connection, and the one place Redis failures become ``RedisUnavailable``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from acdkit.core.errors import NotDurable, RedisUnavailable
from acdkit.store.primary import (
    CONNECT_TIMEOUT,
    HEALTH_CHECK_INTERVAL,
    MAX_CONNECTIONS,
    ROUND_TRIPS,
    Primary,
    RoundTrips,
    as_primary,
    async_client,
    redact,
)

P = ParamSpec("P")
T = TypeVar("T")

COMMAND_TIMEOUT = 5.0
NO_REPLICAS = "NOREPLICAS"  # the primary's answer to a write while min-replicas-to-write fails
__all__ = ["CONNECT_TIMEOUT", "HEALTH_CHECK_INTERVAL", "ROUND_TRIPS", "Primary", "RoundTrips",
           "client", "connect", "guarded", "redact", "translated", "unavailable"]


def client(target: str | Primary, *, timeout: float = COMMAND_TIMEOUT,
           round_trips: RoundTrips = ROUND_TRIPS) -> aioredis.Redis:
    """A client for ``target`` (a ``redis://``, ``rediss://`` or ``unix://`` URL, or a
    ``Primary`` found through sentinels: store/primary.py) returning ``str``, counting its
    round trips in ``round_trips`` (the process's, shown on ``/metrics``, by default).

    Its commands share one connection (store/multiplex.py); those that hold or change a
    connection (blocking reads, watched transactions) take one from its pool.

    Commands are never retried by the client: a claim script whose reply timed out may have
    run, and running it again would report a lost claim for a reservation that was made. The
    callers retry whole operations instead (the dispatcher's loop, RQ's retries); a broken
    shared connection is made again by the next command, and the pool's health check
    replaces a pooled connection that died while idle before it is used.
    """
    # A blocking pool: a burst of commands that need a connection of their own (dial-backs
    # waiting on a BLPOP for their outcome) waits for a free connection instead of raising
    # "Too many connections" (redis-py 8.1).
    return async_client(target, timeout=timeout, max_connections=MAX_CONNECTIONS,
                        round_trips=round_trips)


async def connect(target: str | Primary, *, timeout: float = COMMAND_TIMEOUT,
                  round_trips: RoundTrips = ROUND_TRIPS) -> aioredis.Redis:
    """A client for ``target`` that answered a PING; raise ``RedisUnavailable`` (naming the
    address or the sentinels, never the password) when Redis does not answer.
    """
    made = client(target, timeout=timeout, round_trips=round_trips)
    try:
        with translated(as_primary(target).where):
            await made.ping()
    except BaseException:
        await made.aclose()
        raise
    return made


def unavailable(err: BaseException, url: str = "") -> RedisUnavailable:
    """The error to raise for a Redis connection failure ``err`` (at ``url``, a URL or a
    ``Primary.where``, if known)."""
    where = f" at {redact(url)}" if url else ""
    return RedisUnavailable(
        f"Redis{where} is unavailable ({err}); is redis-server running and is redis.url "
        "(ACDKIT_REDIS_URL) right?"
    )


@contextmanager
def translated(url: str = "") -> Iterator[None]:
    """Turn redis-py connection and timeout errors (and OSError) into ``RedisUnavailable``,
    and a primary's refusal to write without its replicas (``min-replicas-to-write``) into
    ``NotDurable``: nothing was written (docs/redis-ha.md)."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as err:
        raise unavailable(err, url) from err
    except ResponseError as err:
        if str(err).startswith(NO_REPLICAS):
            raise NotDurable(f"Redis refused a write: {err}") from err
        raise


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a repository coroutine so that Redis failures raise ``RedisUnavailable``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated():
            return await fn(*args, **kwargs)

    return wrapper
