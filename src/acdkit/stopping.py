"""Stopping the long-running loops of a process for certain.

On Python 3.11 ``asyncio.wait_for`` returns instead of raising ``CancelledError`` when the
task is cancelled as the awaited work ends (CPython gh-86296, fixed in 3.12). redis-py bounds
every write with it, so a loop cancelled while it sent a command ran on, met the pool closing
under it, took that for an outage and retried for ever: serve did not exit on SIGTERM. The
pool's connections now raise such a lost cancellation (store/primary.py ``counting``); any
other ``wait_for`` may still lose one (an ARI answer that arrives as the cancellation comes).

``stop_loops`` cancels again every ``again`` seconds until each loop ended, so a stop never
depends on one cancellation arriving. It is for loops whose clean-up is short (a pub/sub
close): never for call flows, whose clean-up (hang-ups, state changes in the pool) a second
cancellation would cut short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

AGAIN = 0.1  # seconds between cancellations of a loop that runs on


async def stop_loops(loops: Iterable[asyncio.Future[Any]], timeout: float,
                     again: float = AGAIN) -> set[asyncio.Future[Any]]:
    """Cancel ``loops`` and wait up to ``timeout`` s for them to end, cancelling those that
    still run again every ``again`` s; returns the ones still running then. Cancelled
    meanwhile, it goes on stopping them and raises ``CancelledError`` afterwards."""
    clock = asyncio.get_running_loop().time
    deadline = clock() + timeout
    running = {loop for loop in loops if not loop.done()}
    cancelled = False  # this stop itself: it finishes first (bounded by ``timeout``)
    while running:
        for loop in running:
            loop.cancel()
        left = deadline - clock()
        if left <= 0:
            break
        try:
            _, running = await asyncio.wait(running, timeout=min(again, left))
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return running
