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
MAX_CONNECTIONS = 200


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def client(url: str, *, timeout: float = COMMAND_TIMEOUT) -> aioredis.Redis:
    """A client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) returning ``str``.

    Commands are never retried by the client: a claim script whose reply timed out may have
    run, and running it again would report a lost claim for a reservation that was made. The
    callers retry whole operations instead (the dispatcher's loop, RQ's retries), and the
    health check replaces a connection that died while idle before it is used.
    """
    # A blocking pool: a burst of callers (40 set-ups a second on the lab) needs more
    # connections at once than the default pool's 100, which then raises "Too many
    # connections" (redis-py 8.1) and drops calls; this one waits for a free connection.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        decode_responses=True,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=timeout,
        health_check_interval=HEALTH_CHECK_INTERVAL,
        retry=Retry(NoBackoff(), retries=0),
    )
    made: aioredis.Redis = aioredis.Redis.from_pool(pool)
    return made


async def connect(url: str, *, timeout: float = COMMAND_TIMEOUT) -> aioredis.Redis:
    """A client for ``url`` that answered a PING; raise ``RedisUnavailable`` (naming the
    address, never the password) when Redis does not answer.
    """
    made = client(url, timeout=timeout)
    try:
        with translated(url):
            await made.ping()
    except BaseException:
        await made.aclose()
        raise
    return made


def unavailable(err: BaseException, url: str = "") -> RedisUnavailable:
    """The error to raise for a Redis connection failure ``err`` (at ``url`` if known)."""
    where = f" at {redact(url)}" if url else ""
    return RedisUnavailable(
        f"Redis{where} is unavailable ({err}); is redis-server running and is redis.url "
        "(ACDKIT_REDIS_URL) right?"
    )


@contextmanager
def translated(url: str = "") -> Iterator[None]:
    """Turn redis-py connection and timeout errors (and OSError) into ``RedisUnavailable``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as err:
        raise unavailable(err, url) from err


def guarded(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a repository coroutine so that Redis failures raise ``RedisUnavailable``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with translated():
            return await fn(*args, **kwargs)

    return wrapper
