"""The Redis connection, and the one place Redis failures become ``RedisUnavailable``."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from acdkit.core.errors import RedisUnavailable

P = ParamSpec("P")
T = TypeVar("T")

CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 5.0
HEALTH_CHECK_INTERVAL = 15


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str, *, timeout: float = COMMAND_TIMEOUT) -> aioredis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) returning ``str``.

    Connecting is lazy: the first command fails with ``RedisUnavailable`` when Redis is down.
    Commands are never retried by the client: a claim script whose reply timed out may have
    run, and running it again would report a lost claim for a reservation that was made. The
    callers retry whole operations instead (the dispatcher's loop, RQ's retries), and the
    health check replaces a connection that died while idle before it is used.
    """
    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(NoBackoff(), retries=0),
    )
    return client


def unavailable(err: BaseException) -> RedisUnavailable:
    """The error to raise for a Redis connection failure ``err``."""
    return RedisUnavailable(
        f"Redis is unavailable ({err}); is redis-server running and redis.url "
        "(ACDKIT_REDIS_URL) right?"
    )


@contextmanager
def translated() -> Iterator[None]:
    """Turn redis-py connection and timeout errors (and OSError) into ``RedisUnavailable``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as err:
        raise unavailable(err) from err


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a repository coroutine so that Redis failures raise ``RedisUnavailable``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated():
            return await fn(*args, **kwargs)

    return wrapper
