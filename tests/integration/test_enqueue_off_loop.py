"""``serve`` enqueues RQ jobs without blocking its event loop: with Redis stalled (CLIENT
PAUSE), enqueue returns at once and the loop keeps turning; once Redis answers, the job is
there, under the same id, and a job id already queued is not queued twice."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from acdkit.jobqueue import BackgroundJobQueue, RqJobQueue
from acdkit.ports import JobQueue

pytestmark = pytest.mark.integration

STALL = 1.5  # seconds Redis stops answering writes


async def loop_lag_while_enqueueing(jobs: JobQueue, redis_url: str) -> tuple[float, float]:
    """(longest loop stall, seconds enqueue took) while Redis is paused."""
    admin = redis.Redis.from_url(redis_url)
    lags: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    admin.execute_command("CLIENT", "PAUSE", int(STALL * 1000), "WRITE")
    start = time.monotonic()
    try:
        jobs.enqueue("callbacks", "acdkit.jobs.dial_back", "cb1", job_id="dial-cb1-1")
        took = time.monotonic() - start
        await asyncio.sleep(0.2)
    finally:
        ticking.cancel()
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
    return max(lags), took


async def test_a_stalled_redis_does_not_stall_the_loop(redis_url: str) -> None:
    jobs = BackgroundJobQueue(RqJobQueue(redis_url, socket_timeout=5.0))
    try:
        lag, took = await loop_lag_while_enqueueing(jobs, redis_url)
        print(f"enqueue with Redis paused: returned in {took * 1000:.1f} ms, "
              f"longest loop stall {lag * 1000:.0f} ms")
        assert took < 0.1 and lag < 0.5
        assert jobs.enqueue("callbacks", "acdkit.jobs.dial_back", "cb1",
                            job_id="dial-cb1-1") == "dial-cb1-1"
        await asyncio.to_thread(jobs.wait_idle)
        queue = Queue("callbacks", connection=jobs.jobs.connection, serializer=JSONSerializer)
        assert queue.job_ids == ["dial-cb1-1"]  # queued once, by its id
        fresh = jobs.enqueue("requests", "acdkit.jobs.deliver_reply", "vr1")
        await asyncio.to_thread(jobs.wait_idle)
        assert Queue("requests", connection=jobs.jobs.connection,
                     serializer=JSONSerializer).job_ids == [fresh]
    finally:
        jobs.close()


async def test_the_synchronous_queue_stalls_the_loop(redis_url: str) -> None:
    """What serve did before: the measure the test above improves on."""
    jobs = RqJobQueue(redis_url, socket_timeout=5.0)
    try:
        lag, took = await loop_lag_while_enqueueing(jobs, redis_url)
        print(f"synchronous enqueue with Redis paused: {took * 1000:.0f} ms, "
              f"loop stall {lag * 1000:.0f} ms")
        assert lag > STALL / 2
    finally:
        jobs.close()
