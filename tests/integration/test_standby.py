"""The node lease (store/lease.py) and its keeper (services/standby.py) on a real redis-server:
one holder at a time, a standby that takes over only once the lease expired, and a holder
that stops before its lease could pass to another process (docs/standby.md)."""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import time
from collections.abc import AsyncIterator

import pytest
from sentinels import SentinelGroup, wait_until
from test_redis_ha import group, settings_for  # noqa: F401  (group: the fixture)
from tests.conftest import end_process, free_port, start_redis

from acdkit.bootstrap import open_pool
from acdkit.config import Settings
from acdkit.core.errors import LeaseLost, NotDurable, RedisUnavailable
from acdkit.core.lease import LeaseTerms, deadline
from acdkit.services.standby import LeaseKeeper, NoLease, is_dead, keeper_of, this_process, token_of
from acdkit.store.connection import client, connect
from acdkit.store.keys import Keys
from acdkit.store.lease import NodeLease
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration

FAST = LeaseTerms(ttl=0.9, margin=0.3, poll=0.05)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[object]:
    made = await connect(redis_url)
    try:
        yield made
    finally:
        await made.aclose()


def lease_on(redis: object, node: str = "a") -> NodeLease:
    return NodeLease(redis, Keys(), None, node, "acdkit")  # type: ignore[arg-type]


def keeper(redis: object, terms: LeaseTerms = FAST) -> LeaseKeeper:
    return LeaseKeeper(lease_on(redis), terms, "node a, app acdkit")


# -- the lease ------------------------------------------------------------------------------


async def test_take_renew_release_by_token_with_a_growing_epoch(redis: object) -> None:
    lease = lease_on(redis)
    assert await lease.take("one", 5000, 3000) == 1
    assert await lease.take("two", 5000, 3000) == 0  # held: "two" is a standby now
    state = await lease.state()
    assert (state.holder, state.epoch, state.standbys) == ("one", 1, ("two",))
    assert 4000 < state.ttl_ms <= 5000
    assert not await lease.renew("two", 5000)
    assert not await lease.release("two")
    assert await lease.renew("one", 5000)
    assert await lease.release("one")
    assert await lease.take("two", 5000, 3000) == 2
    state = await lease.state()
    assert (state.holder, state.epoch, state.standbys) == ("two", 2, ())


async def test_a_late_renew_never_brings_an_expired_lease_back(redis: object) -> None:
    lease = lease_on(redis)
    assert await lease.take("one", 50, 3000) == 1
    await asyncio.sleep(0.15)
    assert not await lease.renew("one", 5000)
    assert (await lease.state()).holder == ""


async def test_leases_of_two_nodes_are_apart(redis: object) -> None:
    assert await lease_on(redis, "a").take("one", 5000, 3000) == 1
    assert await lease_on(redis, "b").take("two", 5000, 3000) == 1


async def test_a_holder_is_dead_only_when_its_process_is_gone_here() -> None:
    me = this_process()
    assert not is_dead(token_of(me), me)  # alive: this very process
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()  # reaped: its pid is free
    gone = token_of(type(me)(me.host, me.pidns, proc.pid, "1"))
    assert is_dead(gone, me)
    elsewhere = token_of(type(me)("other-host", me.pidns, proc.pid, "1"))
    assert not is_dead(elsewhere, me)  # another machine: only the expiry decides
    assert not is_dead("not a token", me)


async def test_a_dead_holder_on_this_machine_is_replaced_at_once(redis: object) -> None:
    me = this_process()
    proc = await asyncio.create_subprocess_exec("true")
    await proc.wait()
    gone = token_of(type(me)(me.host, me.pidns, proc.pid, "1"))
    lease = lease_on(redis)
    assert await lease.take(gone, 60_000, 3000) == 1
    waiting = keeper(redis)
    assert await asyncio.wait_for(waiting.acquire(asyncio.Event()), 2) is True
    assert waiting.epoch == 2
    assert (await lease.state()).holder == waiting.token


# -- the keeper -----------------------------------------------------------------------------


async def test_a_standby_takes_over_only_after_the_holder_stopped_and_its_lease_expired(
        redis: object) -> None:
    active, standby = keeper(redis), keeper(redis)
    assert await active.acquire(asyncio.Event())
    renewing = asyncio.create_task(active.keep())
    waiting = asyncio.create_task(standby.acquire(asyncio.Event()))
    await asyncio.sleep(3 * FAST.ttl)  # renewed several times over: the standby still waits
    assert not waiting.done()
    assert (await lease_on(redis).state()).standbys == (standby.token,)
    renewing.cancel()  # the active dies: it renews no more
    stopped_acting = deadline(FAST, active.renewed_at)
    assert await asyncio.wait_for(waiting, FAST.ttl + 1.0)
    assert time.monotonic() >= stopped_acting  # never both at once
    assert standby.epoch == active.epoch + 1


async def test_never_two_holders_at_once_among_contenders(redis: object) -> None:
    """Contenders take the lease, hold it a while, then die (stop renewing) or give it up;
    the times each may act never overlap, and the epochs grow in the order taken."""
    held: list[tuple[float, float, int]] = []
    rng = random.Random(7)
    end = time.monotonic() + 6.0

    async def contender() -> None:
        while time.monotonic() < end:
            mine = keeper(redis)
            if not await asyncio.wait_for(mine.acquire(asyncio.Event()), 10):
                return
            start = time.monotonic()
            renewing = asyncio.create_task(mine.keep())
            await asyncio.sleep(rng.uniform(0.0, 1.2))
            renewing.cancel()
            if rng.random() < 0.5:  # dies: it may have acted until its own deadline
                last = deadline(FAST, mine.renewed_at)
            else:  # stops, then gives the lease up
                last = time.monotonic()
                await mine.release()
            held.append((start, last, mine.epoch))

    await asyncio.gather(*(contender() for _ in range(4)))
    held.sort()
    assert len(held) >= 5, held
    for (_, last, epoch), (start, _, next_epoch) in itertools.pairwise(held):
        assert start >= last, held
        assert next_epoch > epoch, held


async def test_the_holder_stops_when_its_lease_was_taken(redis: object) -> None:
    active = keeper(redis)
    assert await active.acquire(asyncio.Event())
    renewing = asyncio.create_task(active.keep())
    await redis.set(lease_on(redis).key, "an intruder")  # type: ignore[attr-defined]
    with pytest.raises(LeaseLost, match="another serve holds it"):
        await asyncio.wait_for(renewing, FAST.renew_every + 1.0)


async def test_the_holder_stops_before_its_lease_could_end_when_redis_stalls(
        redis: object) -> None:
    terms = LeaseTerms(ttl=1.5, margin=0.5, poll=0.1)
    active = keeper(redis, terms)
    assert await active.acquire(asyncio.Event())
    renewing = asyncio.create_task(active.keep())
    await asyncio.sleep(0.1)
    await redis.execute_command("CLIENT", "PAUSE", 4000, "WRITE")  # type: ignore[attr-defined]
    try:
        with pytest.raises(LeaseLost, match="not renewed within 1 s"):
            await asyncio.wait_for(renewing, terms.ttl + 1.0)
        stopped = time.monotonic()
        assert stopped < active.renewed_at + terms.ttl  # before Redis could let it go
    finally:
        await redis.execute_command("CLIENT", "UNPAUSE")  # type: ignore[attr-defined]


async def test_the_holder_stops_when_redis_is_gone() -> None:
    port = free_port()
    server = start_redis(port)
    made = client(f"redis://127.0.0.1:{port}/0", timeout=1.0)
    terms = LeaseTerms(ttl=1.5, margin=0.5, poll=0.1)
    try:
        active = keeper(made, terms)
        assert await active.acquire(asyncio.Event())
        renewing = asyncio.create_task(active.keep())
        await asyncio.sleep(0.1)
        end_process(server, signal.SIGKILL, 5)
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(renewing, terms.ttl + 1.0)
        assert time.monotonic() < active.renewed_at + terms.ttl
        with pytest.raises(RedisUnavailable):
            await lease_on(made).state()
    finally:
        end_process(server, signal.SIGKILL, 5)
        if server.stdout:
            server.stdout.close()
        await made.aclose()


async def test_a_standby_stops_waiting_when_told(redis: object) -> None:
    assert await lease_on(redis).take("someone", 60_000, 3000)
    stop = asyncio.Event()
    waiting = asyncio.create_task(keeper(redis).acquire(stop))
    await asyncio.sleep(0.2)
    stop.set()
    assert await asyncio.wait_for(waiting, 2) is False


async def test_with_replicas_a_take_and_a_renew_count_only_once_confirmed(
        group: SentinelGroup) -> None:  # noqa: F811
    pool = await open_pool(settings_for(group, min_replicas_ack=1, ack_timeout_ms=300))
    lease = NodeLease(pool.redis, pool.keys, pool.durability, "a", "acdkit")
    try:
        assert await lease.take("one", 5000, 3000) == 1
        assert await lease.renew("one", 5000)
        for port in group.data[1:]:
            group.stop(port)
        wait_until(lambda: group.online_replicas(group.data[0]) == 0, 10.0, "no replica")
        with pytest.raises(NotDurable):
            await lease.renew("one", 5000)  # not counted: its holder's deadline stands
        assert await lease.release("one")
        with pytest.raises(NotDurable):
            await lease.take("two", 5000, 3000)
        assert (await lease.state()).holder == ""  # an unconfirmed take is given back
    finally:
        await pool.close()


async def test_a_lone_serve_takes_no_lease(pool: Pool) -> None:
    """Without ``node.lease`` serve is active at once and never fenced: nothing in Redis."""
    keeper = keeper_of(pool, Settings())
    assert isinstance(keeper, NoLease)
    assert await keeper.acquire(asyncio.Event())
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(keeper.keep(), 0.2)  # never lost
    assert not [k async for k in pool.redis.scan_iter(match="*lease*")]
