"""serve's command loop (ari/dialback.py ``run_commands``) outlives a Redis outage: the jobs'
dial-back commands pushed after Redis came back are still taken. Before, the first outage
ended the loop for good and every later callback left its agent reserved until serve was
restarted (found by `make chaos` with Redis failovers)."""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import subprocess
from typing import Any

import pytest
from poolkit import RULES
from tests.conftest import end_process, free_port, start_redis

from acdkit.ari.dialback import Commands, run_commands
from acdkit.ari.spawner import Spawner
from acdkit.stopping import stop_loops
from acdkit.store.callbacks import CallbackStore
from acdkit.store.connection import connect
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration


def stop(server: subprocess.Popen[bytes], sig: int) -> None:
    end_process(server, sig, 5)
    if server.stdout:
        server.stdout.close()


async def taken(caplog: pytest.LogCaptureFixture, marker: str, timeout: float) -> bool:
    """Wait until the loop logged the command ``marker`` as taken (an unknown op is logged)."""
    for _ in range(int(timeout / 0.05)):
        if any(marker in r.getMessage() for r in caplog.records):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_the_command_loop_takes_commands_again_after_redis_comes_back(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="acdkit.ari.dialback")
    port = free_port()
    server = start_redis(port)
    pool = Pool(await connect(f"redis://127.0.0.1:{port}/0"), RULES)
    store = CallbackStore(pool, lock_ttl=60)
    nothing: Any = None  # the flows of real commands: not reached by these
    loop = asyncio.create_task(run_commands(Commands(store, Spawner(), nothing, nothing,
                                                     nothing)))
    try:
        await store.push_command({"op": "probe", "n": 1})
        assert await taken(caplog, "'n': 1", 5), "the loop took no command at all"

        stop(server, signal.SIGKILL)  # Redis gone under the loop's BLPOP
        assert await taken(caplog, "commands: Redis is unavailable", 10)
        server = start_redis(port)
        await store.push_command({"op": "probe", "n": 2})
        assert await taken(caplog, "'n': 2", 15), "the loop ended with the outage"
        assert not loop.done()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await pool.close()
        stop(server, signal.SIGTERM)


async def test_a_busy_command_loop_ends_when_cancelled_at_any_moment(redis_url: str) -> None:
    """A task cancelled while it sends a command lost the cancellation in redis-py's
    ``wait_for`` (Python 3.11): the loop ran on, and serve did not exit on SIGTERM. The pool's
    connections raise it (store/primary.py ``counting``); before, this loop ran on within 40
    rounds, even when cancelled again every 0.1 s."""
    pool = Pool(await connect(redis_url), RULES)
    store = CallbackStore(pool, lock_ttl=60)
    nothing: Any = None
    rng = random.Random(7)

    async def push() -> None:
        while True:
            await store.push_command({"op": "probe"})

    pusher = asyncio.create_task(push())
    try:
        for _ in range(60):
            loop = asyncio.create_task(run_commands(Commands(store, Spawner(), nothing,
                                                             nothing, nothing)))
            await asyncio.sleep(rng.uniform(0.0, 0.03))
            loop.cancel()
            await asyncio.wait([loop], timeout=2.0)
            assert loop.cancelled()
        assert await pool.redis.ping()  # the connections closed on the way are made again
    finally:
        await stop_loops([pusher], timeout=2.0)
        await pool.close()
