"""The shared connection (store/multiplex.py) against a real redis-server: many callers' commands
on one connection, each reply to its own caller, private commands on their own connection, a
cancelled caller or a lost connection never putting the others out of step."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import ResponseError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tests.conftest import end_process, free_port, start_redis

from acdkit.core.errors import RedisUnavailable
from acdkit.store.connection import RoundTrips, client, translated
from acdkit.store.multiplex import MultiplexedRedis, shareable
from acdkit.store.scripts import Script

pytestmark = pytest.mark.integration

BUSY = """local t = redis.call('TIME')
local stop = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
repeat t = redis.call('TIME') until tonumber(t[1]) * 1000000 + tonumber(t[2]) >= stop
return 1"""  # keeps the server busy for ARGV[1] µs


@pytest.fixture
async def shared(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    made = client(redis_url, timeout=2.0, round_trips=RoundTrips())
    assert isinstance(made, MultiplexedRedis)
    try:
        yield made
    finally:
        await made.aclose()


def connections_received(plain: redis.Redis) -> int:
    return int(plain.info("stats")["total_connections_received"])


async def test_many_callers_share_one_connection_and_each_gets_its_own_reply(
        shared: aioredis.Redis, redis_url: str) -> None:
    plain = redis.Redis.from_url(redis_url)
    before = connections_received(plain)
    values = {f"k{i}": str(random.randrange(10**9)) for i in range(300)}

    async def caller(key: str, value: str) -> tuple[str | None, dict[str, str]]:
        await shared.set(key, value)
        await shared.hset(f"h{key}", mapping={"v": value, "k": key})
        return await shared.get(key), await shared.hgetall(f"h{key}")

    got = await asyncio.gather(*(caller(k, v) for k, v in values.items()))
    assert got == [(v, {"v": v, "k": k}) for k, v in values.items()]
    assert connections_received(plain) - before == 1  # a pooled client opens up to 300
    plain.close()


async def test_every_script_of_the_client_is_called_directly_and_reloaded_when_lost(
        shared: aioredis.Redis) -> None:
    """The pool's, the callbacks' and the replay's scripts all come from register_script:
    each a Script, which loads itself again after SCRIPT FLUSH and works in a pipeline."""
    script = shared.register_script("return {KEYS[1], ARGV[1]}")
    assert isinstance(script, Script)
    assert await script(keys=["k"], args=["a"]) == ["k", "a"]
    await shared.script_flush()
    assert await script(keys=["k"], args=["b"]) == ["k", "b"]
    pipe = shared.pipeline(transaction=False)
    await script(keys=["k"], args=["c"], client=pipe)
    assert await pipe.execute() == [["k", "c"]]


async def test_pipelines_and_transactions_reply_as_redis_py_does(
        shared: aioredis.Redis, redis_url: str) -> None:
    await shared.set("s", "text")
    pipe = shared.pipeline(transaction=False)
    pipe.incr("n").hgetall("missing").incr("s").zadd("z", {"a": 1.5}).zrange("z", 0, -1,
                                                                            withscores=True)
    n, empty, wrong_type, added, ranged = await pipe.execute(raise_on_error=False)
    assert (n, empty, added, ranged) == (1, {}, 1, [("a", 1.5)])
    assert isinstance(wrong_type, ResponseError)
    with pytest.raises(ResponseError, match=r"Command # 2 \(INCRBY s 1\) of pipeline"):
        await shared.pipeline(transaction=False).incr("n").incr("s").execute()
    async with shared.pipeline(transaction=True) as tx:
        assert await tx.incr("m").incr("m").get("m").execute() == [1, 2, "2"]
    tx = shared.pipeline(transaction=True).set("x", "1").execute_command("INCRBY", "x")
    with pytest.raises(ResponseError, match="wrong number of arguments"):
        await tx.execute()  # refused as it was queued: nothing of it ran
    assert await shared.get("x") is None
    assert await shared.pipeline(transaction=False).execute() == []


async def test_a_watched_transaction_keeps_a_connection_of_its_own(
        shared: aioredis.Redis) -> None:
    await shared.set("w", "1")
    async with shared.pipeline(transaction=True) as pipe:
        await pipe.watch("w")
        assert await pipe.get("w") == "1"
        await shared.set("w", "2")  # from the shared connection: the watch sees it
        pipe.multi()
        pipe.set("w", "3")
        with pytest.raises(WatchError):
            await pipe.execute()
    assert await shared.get("w") == "2"


async def test_a_blocking_command_does_not_hold_up_the_others(shared: aioredis.Redis) -> None:
    assert not shareable(("BLPOP", "l", 1), {})
    assert not shareable(("XREAD", "BLOCK", 100, "STREAMS", "s", "$"), {})
    assert shareable(("XREAD", "COUNT", 1, "STREAMS", "s", "0"), {})
    waiting = asyncio.create_task(shared.blpop(["l"], timeout=1))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(shared.set("free", "1"), 0.5)  # not queued behind the BLPOP
    await shared.rpush("l", "item")
    assert await asyncio.wait_for(waiting, 0.5) == ("l", "item")


async def test_a_cancelled_caller_loses_its_reply_only(shared: aioredis.Redis) -> None:
    await shared.set("a", "A")
    await shared.set("b", "B")
    busy = asyncio.create_task(shared.eval(BUSY, 0, 200_000))
    await asyncio.sleep(0.02)
    cancelled = asyncio.create_task(shared.get("a"))
    after = asyncio.create_task(shared.get("b"))
    await asyncio.sleep(0.02)
    cancelled.cancel()
    assert await busy == 1
    assert await after == "B"  # not "A": the dropped reply was read and thrown away
    assert await shared.get("a") == "A"


async def test_a_reply_that_does_not_come_fails_its_waiters_and_the_next_command_reconnects(
        redis_url: str) -> None:
    made = client(redis_url, timeout=0.2, round_trips=RoundTrips())
    other = aioredis.Redis.from_url(redis_url)
    try:
        await made.set("k", "v")
        busy = asyncio.create_task(other.eval(BUSY, 0, 700_000))
        await asyncio.sleep(0.05)
        with pytest.raises(RedisTimeoutError):
            await made.get("k")
        with pytest.raises(RedisUnavailable, match="unavailable"), translated():
            await made.get("k")  # the next command waits behind the script again
        await busy
        assert await made.get("k") == "v"
    finally:
        await made.aclose()
        await other.aclose()


async def test_a_connection_killed_by_the_server_is_made_again(
        shared: aioredis.Redis, redis_url: str) -> None:
    await shared.set("k", "v")
    with redis.Redis.from_url(redis_url) as plain:
        mine = [c for c in plain.client_list() if c["cmd"] in {"set", "get"}]
        assert len(mine) == 1
        plain.client_kill_filter(_id=mine[0]["id"])
    await asyncio.sleep(0.05)  # the connection's loss is seen
    assert await shared.get("k") == "v"


async def test_each_command_and_each_pipeline_counts_one_round_trip(redis_url: str) -> None:
    trips = RoundTrips()
    made = client(redis_url, round_trips=trips)
    try:
        await made.ping()
        before = trips.count
        await asyncio.gather(*(made.incr("n") for _ in range(10)))
        await made.pipeline(transaction=False).incr("n").incr("n").execute()
        assert trips.count - before == 11
    finally:
        await made.aclose()


def test_a_closed_client_connects_again_on_the_next_loop(redis_url: str) -> None:
    made = client(redis_url, timeout=2.0, round_trips=RoundTrips())

    async def write_then_read(value: str) -> str | None:
        try:
            await made.set("k", value)
            got: str | None = await made.get("k")
            return got
        finally:
            await made.aclose()

    assert asyncio.run(write_then_read("first")) == "first"
    assert asyncio.run(write_then_read("second")) == "second"  # a new loop: a new connection


async def test_a_server_without_hello_is_served_through_the_pool() -> None:
    port = free_port()
    proc = start_redis(port, "--rename-command", "HELLO", "")  # as Redis before 6 answers
    made = client(f"redis://127.0.0.1:{port}/0", timeout=2.0, round_trips=RoundTrips())
    try:
        assert isinstance(made, MultiplexedRedis) and made.multiplexed is not None
        await made.hset("h", mapping={"a": "1"})  # falls back to the pool, nothing lost
        assert not made.multiplexed.usable
        assert await made.hgetall("h") == {"a": "1"}
        assert await made.pipeline(transaction=True).incr("n").get("n").execute() == [1, "1"]
    finally:
        await made.aclose()
        end_process(proc, signal.SIGTERM, 5)
        if proc.stdout:
            proc.stdout.close()
