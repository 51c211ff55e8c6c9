"""The count of Redis round trips (store/primary.py), against a real redis-server: one per
command, one per pipeline or transaction whatever its length, none for an empty pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from poolkit import RULES, task
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection

from acdkit.store import connection
from acdkit.store.connection import ROUND_TRIPS, RoundTrips, client, connect
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration


@pytest.fixture
async def counted(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, RoundTrips]]:
    trips = RoundTrips()
    made = await connect(redis_url, round_trips=trips)  # the PING (and the handshake) count
    try:
        yield made, trips
    finally:
        await made.aclose()


async def test_each_command_is_one_round_trip(
        counted: tuple[aioredis.Redis, RoundTrips]) -> None:
    redis, trips = counted
    before = trips.count
    await redis.set("k", "1")
    await redis.incr("k")
    await redis.hset("h", mapping={"a": "1", "b": "2"})
    assert await redis.hgetall("h") == {"a": "1", "b": "2"}
    assert await redis.eval("return redis.call('GET', KEYS[1])", 1, "k") == "2"
    assert trips.count - before == 5


async def test_a_pipeline_is_one_round_trip_whatever_its_length(
        counted: tuple[aioredis.Redis, RoundTrips]) -> None:
    redis, trips = counted
    before = trips.count
    pipe = redis.pipeline(transaction=False)
    for i in range(50):
        pipe.set(f"k{i}", i)
    assert len(await pipe.execute()) == 50
    assert trips.count - before == 1
    async with redis.pipeline(transaction=True) as tx:  # MULTI ... EXEC: one write too
        assert await tx.incr("n").incr("n").get("n").execute() == [1, 2, "2"]
    assert trips.count - before == 2
    assert await redis.pipeline(transaction=False).execute() == []  # nothing sent
    assert trips.count - before == 2


async def test_a_script_not_yet_cached_costs_three_round_trips(
        counted: tuple[aioredis.Redis, RoundTrips]) -> None:
    redis, trips = counted
    await redis.script_flush()
    script = redis.register_script("return 7")
    before = trips.count
    assert await script() == 7  # EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA
    assert trips.count - before == 3
    assert await script() == 7
    assert trips.count - before == 4


async def test_pool_operations_count_in_the_process_counter(redis_url: str) -> None:
    pool = Pool(client(redis_url), RULES)
    try:
        await pool.add_task(task("t1"))  # connects first: the handshake is not measured
        before = ROUND_TRIPS.count
        assert await pool.get_task("t1") is not None
        assert ROUND_TRIPS.count - before >= 1
    finally:
        await pool.close()


async def test_two_counters_do_not_mix(redis_url: str) -> None:
    mine, theirs = RoundTrips(), RoundTrips()
    a = await connect(redis_url, round_trips=mine)
    b = await connect(redis_url, round_trips=theirs)
    try:
        start = (mine.count, theirs.count)
        for _ in range(3):
            await a.ping()
        await b.ping()
        assert (mine.count - start[0], theirs.count - start[1]) == (3, 1)
    finally:
        await a.aclose()
        await b.aclose()


def test_counting_keeps_the_connection_kind_of_the_url() -> None:
    for url, kind in (("unix:///run/redis/redis.sock", UnixDomainSocketConnection),
                      ("rediss://127.0.0.1:6380/0", SSLConnection)):
        made = connection.client(url)
        assert issubclass(made.connection_pool.connection_class, kind), url
