"""The do-not-call list in Redis: ``acdkit:{pool}:dnc``, a set of E.164 numbers.

It sits next to the configured ``numbers.do_not_call`` (which ``policies.number_policy`` puts
into the ``NumberPolicy``): a number on either list is never dialed. The dial gate and the
outbound store read this one; ``acdkit dnc add|remove|import|list`` edit it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from acdkit.store.connection import guarded
from acdkit.store.keys import check_number
from acdkit.store.pool import Pool


def dnc_key(pool: Pool) -> str:
    """The key of the pool's do-not-call set."""
    return f"{pool.keys.base}dnc"


@guarded
async def dnc_add(pool: Pool, numbers: Iterable[str], batch: int = 10_000) -> int:
    """Put E.164 ``numbers`` on the list; return how many were not on it yet.
    Raises ``InvalidInput`` for a number that is not E.164 (nothing of that batch is added)."""
    added = 0
    todo = [check_number(n) for n in numbers]
    for start in range(0, len(todo), batch):
        added += int(await pool.redis.sadd(dnc_key(pool), *todo[start:start + batch]))
    return added


@guarded
async def dnc_remove(pool: Pool, numbers: Iterable[str]) -> int:
    """Take ``numbers`` off the list; return how many were on it."""
    todo = [check_number(n) for n in numbers]
    return int(await pool.redis.srem(dnc_key(pool), *todo)) if todo else 0


@guarded
async def on_dnc(pool: Pool, number: str) -> bool:
    """True when ``number`` is on the pool's do-not-call list."""
    return bool(await pool.redis.sismember(dnc_key(pool), number))


@guarded
async def dnc_numbers(pool: Pool) -> list[str]:
    """Every number on the list, sorted."""
    return sorted(cast(set[str], await pool.redis.smembers(dnc_key(pool))))
