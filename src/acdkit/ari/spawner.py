"""Background work of the Stasis app: each piece a task that logs its failure and never takes
the app down (a channel gone meanwhile is no failure)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from acdkit.ari.session import ChannelGone

log = logging.getLogger(__name__)


class Spawner:
    """Runs coroutines as named tasks and keeps a reference until each ends."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(coro, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, timeout: float) -> bool:
        """Cancel every task still running and wait up to ``timeout`` s for them to end
        (their clean-up runs now, before serve gives its node's lease up: docs/standby.md);
        True when all ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending

    async def _guarded(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await coro
        except ChannelGone:
            pass
        except Exception:
            log.exception("%s failed", name)
