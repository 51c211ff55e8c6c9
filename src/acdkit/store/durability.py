"""Acknowledged means durable: wait until replicas hold the writes that must survive a failover.

Redis replicates asynchronously, so a primary that acknowledged a write and then died may take
it along: a booked callback vanishes, a vanished claim lets two agents take one task, a
vanished dial lock dials a customer twice. ``Durability.confirm`` runs ``WAIT numreplicas
timeout`` after such writes (a booking, a claim, a dial lock: docs/redis-ha.md lists each
place and its measured cost) and raises ``NotDurable`` when fewer replicas confirm in time.

``WAIT`` covers the writes of the connection it runs on, and a pool spreads one operation's
writes over several connections. Replication is one ordered stream, though: ``confirm`` makes
one small write (``<base>:fence``) and waits for it on the same connection, in one round
trip, and a replica that holds the fence holds every write that finished before it, from any
connection of any process.

When replicas do not confirm behind Sentinel, the process may be writing to a primary the
sentinels already replaced: a forced failover leaves the old one taking writes (and confirming
none once its replicas moved) until the sentinels demote it, which took 10 s in `make chaos`.
``confirm`` then asks the sentinels for the primary at once, so the next operation goes to
the new one instead of losing its writes with the old (docs/redis-ha.md).

``min_replicas`` 0 (the default, one box) turns it off: ``confirm`` then costs nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from acdkit.core.errors import NotDurable
from acdkit.store.connection import NO_REPLICAS, translated
from acdkit.store.multiplex import Multiplexed

FENCE_TTL_MS = 60_000  # the fence key is only written to be replicated: let it go soon


@dataclass(frozen=True)
class Acks:
    """How many replicas must confirm (``redis.min_replicas_ack``; 0 = do not wait) and
    for how long to wait for them (``redis.ack_timeout_ms``)."""

    min_replicas: int = 0
    timeout_ms: int = 500


class Durability:
    """``confirm()``: the writes made so far are on ``acks.min_replicas`` replicas."""

    def __init__(self, redis: aioredis.Redis, fence_key: str, acks: Acks) -> None:
        self.redis = redis
        self.fence_key = fence_key
        self.acks = acks

    @property
    def enabled(self) -> bool:
        return self.acks.min_replicas > 0

    async def confirm(self) -> None:
        """Return once ``min_replicas`` replicas hold every write that finished before this
        call; raise ``NotDurable`` when they do not confirm within ``timeout_ms`` (or the
        primary refuses the fence for lack of replicas), ``RedisUnavailable`` when Redis does
        not answer."""
        if not self.enabled:
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.fence_key, "1", px=FENCE_TTL_MS)
        pipe.wait(self.acks.min_replicas, self.acks.timeout_ms)
        with translated():
            wrote, acked = await pipe.execute(raise_on_error=False)
        for reply in (wrote, acked):
            if isinstance(reply, ResponseError):
                if str(reply).startswith(NO_REPLICAS):
                    await self._follow_primary()
                    raise NotDurable(f"Redis refused the write: {reply}")
                raise reply
        if int(acked) < self.acks.min_replicas:
            await self._follow_primary()
            raise NotDurable(f"{int(acked)} of {self.acks.min_replicas} replicas confirmed "
                             f"within {self.acks.timeout_ms} ms")
        if await self._replaced():
            await self._follow_primary()
            raise NotDurable("the primary that confirmed is being replaced by the sentinels")

    async def _replaced(self) -> bool:
        """Behind Sentinel: is the primary written to being replaced, or replaced already?
        A replica of a replaced primary confirms writes that it drops when it follows the
        new one, and a failover in progress may promote the replica that lacks them. Every
        sentinel is asked at once (``SENTINEL MASTER``): only the one leading a failover
        knows of it until the promotion is done. Sentinels that do not answer prove nothing
        (no failover can happen without them either)."""
        pool = self.redis.connection_pool
        if not isinstance(pool, SentinelConnectionPool) or pool.master_address is None:
            return False
        # The fence ran on the shared connection (store/multiplex.py), where the writes ran:
        # that is the primary written to, whatever the pool found since.
        shared = _shared(self.redis)
        written_to = _address((shared and shared.address()) or pool.master_address)
        answers = await asyncio.gather(
            *(_master_state(s, pool.service_name, self.acks.timeout_ms / 1000)
              for s in pool.sentinel_manager.sentinels))
        return any(state is not None and (
            "failover_in_progress" in str(state.get("flags", ""))
            or _address((state["ip"], state["port"])) != written_to) for state in answers)

    async def _follow_primary(self) -> None:
        """Behind Sentinel: ask the sentinels for the primary now; if it moved, close every
        connection to the old one, busy ones too (their commands fail as Redis outages and
        are retried whole: what they wrote there is lost with it anyway)."""
        pool = self.redis.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            before = pool.master_address
            shared = _shared(self.redis)
            with translated():
                await pool.get_master_address()  # type: ignore[no-untyped-call]
                if pool.master_address != before:
                    await pool.disconnect(inuse_connections=True)
            where = shared.address() if shared else None
            moved = pool.master_address is not None and where != _address(pool.master_address)
            if shared and where is not None and moved:
                shared.close()  # the next command connects to the primary the sentinels name


def _shared(redis: aioredis.Redis) -> Multiplexed | None:
    """The client's shared connection, if its commands use one."""
    shared = getattr(redis, "multiplexed", None)
    return shared if isinstance(shared, Multiplexed) and shared.usable else None


async def _master_state(sentinel: aioredis.Redis, name: str,
                        timeout: float) -> dict[str, object] | None:
    """One sentinel's view of the primary ``name``; None when it does not answer within
    ``timeout`` seconds (a hung sentinel must not hold every claim up)."""
    try:
        # Without return_responses, redis-py 8 answers only True.
        state = await asyncio.wait_for(sentinel.sentinel_master(name, return_responses=True),
                                       timeout)
    except (RedisConnectionError, RedisTimeoutError, ResponseError, TimeoutError):
        return None
    return state if isinstance(state, dict) else None


def _address(pair: tuple[object, object]) -> tuple[str, int]:
    """(host, port) as text and number: the sentinels' clients answer in bytes."""
    host, port = pair
    return (host.decode() if isinstance(host, bytes) else str(host),
            int(port))  # type: ignore[call-overload]
