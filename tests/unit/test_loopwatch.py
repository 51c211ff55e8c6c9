"""``watch_loop``: a callback that holds the event loop is named in the log with how long."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from acdkit.loopwatch import watch_loop


async def test_a_held_loop_is_logged_with_how_long(caplog: pytest.LogCaptureFixture) -> None:
    watcher = asyncio.create_task(watch_loop(period=0.05, threshold=0.3))
    with caplog.at_level(logging.WARNING, logger="acdkit.loopwatch"):
        await asyncio.sleep(0.1)  # the watcher is waiting on its timer
        time.sleep(0.5)  # a blocking call holds the loop
        await asyncio.sleep(0.1)  # the watcher wakes, late
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    held = [r.getMessage() for r in caplog.records if "event loop held" in r.getMessage()]
    assert len(held) == 1, held
    assert int(held[0].split()[4]) >= 400
