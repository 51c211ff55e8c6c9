"""Where the pool's Redis primary is, and the one place every Redis client of acdkit is made.

One box: ``redis.url`` names the server. Sentinel (docs/redis-ha.md): ``redis.sentinels``
lists the sentinels and ``redis.master_name`` the primary they watch; ``redis.url`` then gives
only the data nodes' user, password, database and TLS (``rediss://``), never their address.
Each new connection asks the sentinels where the primary is (redis-py's ``master_for``), so a
failover is followed without a restart: a connection to the old primary fails once (a
demoted primary answers READONLY, which redis-py turns into a connection error, or the dead
one's socket is gone), the operation fails with ``RedisUnavailable``, and the caller's own
retry (the dispatcher's loop, RQ's retries, the worker's reconnect) reaches the new one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection, BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.sentinel import Sentinel
from redis.sentinel import SentinelConnectionPool as SyncSentinelConnectionPool

from acdkit.core.errors import ConfigError
from acdkit.store.multiplex import Multiplexed, MultiplexedRedis

CONNECT_TIMEOUT = 2.0  # seconds to open a connection (to a sentinel or to the primary)
SENTINEL_TIMEOUT = 1.0  # seconds a sentinel gets to answer; then the next one is asked
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


class _Revealable(Protocol):
    def reveal(self) -> str: ...


class RedisConfig(Protocol):
    """What ``primary_of`` reads: the ``[redis]`` settings (config.RedisSettings)."""

    @property
    def url(self) -> str: ...
    @property
    def sentinels(self) -> str: ...
    @property
    def master_name(self) -> str: ...
    @property
    def sentinel_username(self) -> str: ...
    @property
    def sentinel_password(self) -> _Revealable: ...


@dataclass(frozen=True)
class Primary:
    """The Redis primary: at ``url``, or (with ``sentinels``) wherever the sentinels say the
    primary ``master_name`` is, with ``url`` giving the credentials, database and TLS."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str = "acdkit"
    sentinel_username: str = ""
    sentinel_password: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.sentinels and self.url.startswith("unix:"):
            raise ConfigError("redis.url", "a unix:// URL cannot be used with redis.sentinels "
                              "(give redis://user:password@primary/db for the data nodes)")

    @property
    def where(self) -> str:
        """For messages and logs: the URL without its password, or the sentinels."""
        if not self.sentinels:
            return redact(self.url)
        listed = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"primary {self.master_name!r} of sentinels {listed}"


def primary_of(config: RedisConfig) -> Primary:
    """The primary the ``[redis]`` settings name."""
    return Primary(config.url, parse_sentinels(config.sentinels), config.master_name,
                   config.sentinel_username, config.sentinel_password.reveal())


def parse_sentinels(text: str) -> tuple[tuple[str, int], ...]:
    """``"10.0.0.1:26379, [::1]:26380"`` as ((host, port), ...); ``ConfigError`` if malformed."""
    found = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65_536:
            raise ConfigError("redis.sentinels", "must be host:port items separated by commas")
        found.append((host.strip("[]"), int(port)))
    return tuple(found)


def as_primary(target: str | Primary) -> Primary:
    return target if isinstance(target, Primary) else Primary(target)


# -- asyncio clients (serve, agi, web, the worker's maintenance) ------------------------------

class RoundTrips:
    """Round trips to Redis: one per command and one per pipeline or transaction (its
    commands go out packed together and their replies are read back together), as its caller
    waits for them, whether on the shared connection (store/multiplex.py, where one socket
    write may carry several callers' round trips) or on a pooled one. A connection's
    handshake and health-check PINGs count too: they are round trips as well."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


ROUND_TRIPS = RoundTrips()  # this process's asyncio clients, unless told otherwise (/metrics)


def counting(cls: type[AbstractConnection], trips: RoundTrips) -> type[AbstractConnection]:
    """``cls`` (a plain, TLS, unix or sentinel-managed connection) counting into ``trips``,
    and never losing a cancellation.

    Every write of redis-py's asyncio client goes through ``send_packed_command``: a
    command's (``send_command``), a pipeline's or a transaction's packed commands. redis-py
    bounds the write with ``asyncio.wait_for``, which on Python 3.11 returns instead of
    raising ``CancelledError`` when the task is cancelled as the write ends (CPython
    gh-86296): nearly always, for a task cancelled while it sends. A loop stopped that way
    ran on (serve did not exit on SIGTERM: docs/architecture.md §7). Such a lost
    cancellation is raised here, after closing the connection, as redis-py does with one
    that reaches it: the command went out, its reply is never read."""
    async def send_packed_command(self: AbstractConnection, command: Any,
                                  check_health: bool = True) -> None:
        trips.count += 1
        task = asyncio.current_task()
        asked = task.cancelling() if task is not None else 0
        await cls.send_packed_command(self, command, check_health)
        if task is not None and task.cancelling() > asked:
            await self.disconnect(nowait=True)
            raise asyncio.CancelledError

    return type(f"Counted{cls.__name__}", (cls,), {"send_packed_command": send_packed_command})


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's Sentinel pool that waits for a free connection, as ``client`` does for one
    box (a burst of callers needs more connections at once than the pool's cap)."""


class _PrimaryClient(MultiplexedRedis):
    """A client of the primary that also closes its connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        owns = close_connection_pool or (close_connection_pool is None
                                         and self.auto_close_connection_pool)
        pool = self.connection_pool
        await super().aclose(close_connection_pool)
        if owns and isinstance(pool, SentinelConnectionPool):
            await pool.sentinel_manager.aclose()


def async_client(target: str | Primary, *, timeout: float, max_connections: int =
                 MAX_CONNECTIONS, decode: bool = True,
                 round_trips: RoundTrips = ROUND_TRIPS) -> aioredis.Redis:
    """An asyncio client of the primary whose commands are never retried by the client (see
    ``connection.client``), whose pool waits ``timeout`` s for a free connection, and whose
    round trips are counted in ``round_trips``."""
    primary = as_primary(target)
    options: dict[str, Any] = {
        "max_connections": max_connections, "timeout": timeout, "decode_responses": decode,
        "socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": timeout,
        "health_check_interval": HEALTH_CHECK_INTERVAL, "retry": Retry(NoBackoff(), retries=0)}
    if not primary.sentinels:
        pool = BlockingConnectionPool.from_url(primary.url, **options)
        pool.connection_class = counting(pool.connection_class, round_trips)
        made = cast(MultiplexedRedis, MultiplexedRedis.from_pool(pool))
        made.multiplexed = Multiplexed(pool, timeout=timeout, trips=round_trips)
        return made
    sentinel = AsyncSentinel(primary.sentinels, sentinel_kwargs=_sentinel_options(primary))
    master: _PrimaryClient = sentinel.master_for(
        primary.master_name, redis_class=_PrimaryClient,
        connection_pool_class=_BlockingSentinelPool, **options, **_data_options(primary))
    master.connection_pool.connection_class = counting(master.connection_pool.connection_class,
                                                       round_trips)
    master.multiplexed = Multiplexed(master.connection_pool, timeout=timeout, trips=round_trips)
    return master


# -- synchronous clients (RQ: the job queue, the worker) ---------------------------------------

class _SyncPrimaryClient(redis.Redis):
    """A synchronous client of the primary that also closes its sentinel connections."""

    def close(self) -> None:
        pool = self.connection_pool
        owns = self.auto_close_connection_pool
        super().close()
        if owns and isinstance(pool, SyncSentinelConnectionPool):
            pool.sentinel_manager.close()


def sync_client(target: str | Primary, *, socket_timeout: float | None = None,
                connect_timeout: float | None = None) -> redis.Redis:
    """A synchronous client of the primary for RQ (bytes, redis-py's own retries)."""
    primary = as_primary(target)
    options: dict[str, Any] = {"socket_timeout": socket_timeout,
                               "socket_connect_timeout": connect_timeout}
    if not primary.sentinels:
        return redis.Redis.from_url(primary.url, **options)
    sentinel = Sentinel(primary.sentinels, sentinel_kwargs=_sentinel_options(primary))
    master: redis.Redis = sentinel.master_for(primary.master_name,
                                              redis_class=_SyncPrimaryClient, **options,
                                              **_data_options(primary))
    return master


def _sentinel_options(primary: Primary) -> dict[str, Any]:
    """How to talk to the sentinels: short timeouts, their own ACL user (docs/redis-ha.md)."""
    options: dict[str, Any] = {"socket_timeout": SENTINEL_TIMEOUT,
                               "socket_connect_timeout": SENTINEL_TIMEOUT}
    if primary.sentinel_username:
        options["username"] = primary.sentinel_username
    if primary.sentinel_password:
        options["password"] = primary.sentinel_password
    return options


def _data_options(primary: Primary) -> dict[str, Any]:
    """The data nodes' user, password, database and TLS, read from ``redis.url``."""
    parsed = parse_url(primary.url)  # type: ignore[no-untyped-call]  # redis-py 8.2
    options = {key: parsed[key] for key in ("username", "password", "db") if key in parsed}
    if primary.url.startswith("rediss:"):
        options["ssl"] = True
    return options
