"""The callback jobs: ``dial_back``, ``promote_due`` and ``recover`` (see jobs/__init__.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from acdkit.config import Settings, load_settings
from acdkit.jobqueue import RqJobQueue
from acdkit.policies import retry_policy
from acdkit.ports import SystemClock
from acdkit.services.callbacks import callback_store
from acdkit.services.dial_back import dial_back_of
from acdkit.services.maintenance import promote_due_callbacks, recover_callbacks
from acdkit.services.pools import open_pool
from acdkit.store.callbacks import CallbackStore
from acdkit.store.primary import primary_of

T = TypeVar("T")


async def with_store(settings: Settings, work: Callable[[CallbackStore], Awaitable[T]]) -> T:
    """Open the pool of ``settings``, run ``work(store)``, close it."""
    pool = await open_pool(settings)
    try:
        return await work(callback_store(pool, settings))
    finally:
        await pool.close()


def dial_back(task_id: str) -> str:
    """RQ job: one dial-back attempt of callback ``task_id`` (see ``DialBack.run``)."""
    settings = load_settings()
    return asyncio.run(with_store(settings, lambda s: dial_back_of(s, settings).run(task_id)))


def promote_due() -> int:
    """RQ job: queue the due callbacks (expiring the overdue); return how many."""
    settings = load_settings()
    retry = retry_policy(settings)
    queued = asyncio.run(with_store(
        settings, lambda s: promote_due_callbacks(s, retry, SystemClock().now())))
    return len(queued)


def recover() -> int:
    """RQ job: re-enqueue ``dial_back`` for callbacks a dead worker left; return how many."""
    settings = load_settings()
    jobs = RqJobQueue(primary_of(settings.redis))
    try:
        return len(asyncio.run(with_store(settings, lambda s: recover_callbacks(s, jobs))))
    finally:
        jobs.close()
