"""The pool a process opens from its settings: on the configured Redis, directly or through
its sentinels, with replicas confirming claims and bookings when ``redis.min_replicas_ack``
asks for it (docs/redis-ha.md). ``serve``, ``agi``, ``web``, the CLI and the jobs all open it
here."""

from __future__ import annotations

from acdkit.config import Settings
from acdkit.policies import priority_rules
from acdkit.store.durability import Acks
from acdkit.store.pool import Pool
from acdkit.store.pool import open_pool as open_store_pool
from acdkit.store.primary import primary_of


async def open_pool(settings: Settings) -> Pool:
    """The pool of ``settings`` (``RedisUnavailable`` when Redis does not answer)."""
    r = settings.redis
    return await open_store_pool(primary_of(r), priority_rules(settings), prefix=r.prefix,
                                 acks=Acks(r.min_replicas_ack, r.ack_timeout_ms))
