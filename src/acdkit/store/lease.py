"""A node's serve lease in Redis: one active `serve` per node and ARI app (docs/standby.md).

Taking it is ``SET lease token NX PX ttl`` (``lua/lease_take.lua``): whoever sets the key
holds the lease and gets the next **epoch** (``INCR`` of ``<lease>:epoch``), a number that
grows with every acquisition and orders the holders in logs and in ``acdkit doctor``. A
process that did not get it is listed as a standby for a little while. Renewing and
releasing compare the token first (``lua/lease_renew.lua``, ``lua/lease_release.lua``), so
only the holder does either, and a renew that comes after the lease expired finds it gone
(or someone else's) and says so instead of taking it back.

With ``redis.min_replicas_ack`` an acquisition and a renew count only once replicas hold
them (``store/durability.py``): a failover must not bring back an older, shorter lease, or
lose the lease while its holder acts.

Keys (store/keys.py): ``lease:<node>:<app>``, ``...:epoch``, ``...:standby``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from importlib.resources import files
from typing import cast

import redis.asyncio as aioredis

from acdkit.core.errors import AcdError
from acdkit.store.connection import guarded
from acdkit.store.durability import Durability
from acdkit.store.keys import Keys


def _script(name: str) -> str:
    return files("acdkit.store").joinpath("lua", f"{name}.lua").read_text()


@dataclass(frozen=True)
class LeaseState:
    """What Redis says of a lease now: its holder's token (``""``: none) and epoch, the
    milliseconds it has left, and the standbys listed."""

    holder: str
    epoch: int
    ttl_ms: int
    standbys: tuple[str, ...]


class NodeLease:
    """The lease of one node's ARI app, taken, renewed and released by token."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, durability: Durability | None,
                 node: str, app: str) -> None:
        """``durability``: how replicas confirm a take or a renew (None: not waited for)."""
        self.redis = redis
        self.durability = durability
        self.key = keys.lease(node, app)
        self.epoch_key = f"{self.key}:epoch"
        self.standby_key = f"{self.key}:standby"
        self._take = redis.register_script(_script("lease_take"))
        self._renew = redis.register_script(_script("lease_renew"))
        self._release = redis.register_script(_script("lease_release"))

    @guarded
    async def take(self, token: str, ttl_ms: int, listed_ms: int, dead_holder: str = "") -> int:
        """Take the lease for ``ttl_ms`` if it is free (or held by ``dead_holder``, a token
        proven dead by the caller); return its new epoch, or 0 when another process holds
        it (``token`` is then listed as a standby for ``listed_ms``).

        Raises ``NotDurable`` (the lease given back) when replicas do not confirm it."""
        epoch = int(cast(int, await self._take(
            keys=[self.key, self.epoch_key, self.standby_key],
            args=[token, ttl_ms, listed_ms, dead_holder])))
        if epoch and self.durability is not None:
            try:
                await self.durability.confirm()
            except AcdError:
                with contextlib.suppress(AcdError):
                    await self.release(token)
                raise
        return epoch

    @guarded
    async def renew(self, token: str, ttl_ms: int) -> bool:
        """Give the lease ``ttl_ms`` more if ``token`` holds it; False when it does not (the
        lease expired or another process took it). Raises ``NotDurable`` when replicas do
        not confirm the renew: it then does not count."""
        renewed = bool(await self._renew(keys=[self.key], args=[token, ttl_ms]))
        if renewed and self.durability is not None:
            await self.durability.confirm()
        return renewed

    @guarded
    async def release(self, token: str) -> bool:
        """Give the lease up if ``token`` holds it (a standby may take it at once)."""
        return bool(await self._release(keys=[self.key], args=[token]))

    @guarded
    async def state(self) -> LeaseState:
        """The holder, epoch, time left and standbys, as Redis has them now."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self.key)
        pipe.get(self.epoch_key)
        pipe.pttl(self.key)
        pipe.time()
        pipe.zrange(self.standby_key, 0, -1, withscores=True)
        holder, epoch, ttl_ms, (sec, usec), listed = await pipe.execute()
        now_ms = int(sec) * 1000 + int(usec) // 1000
        return LeaseState(holder or "", int(epoch or 0) if holder else 0, max(int(ttl_ms), 0),
                          tuple(token for token, until in listed if until > now_ms))

