"""Redis through Sentinel, and "acknowledged means durable" (docs/redis-ha.md), against a real
group: one primary, two replicas, three sentinels (tests/integration/sentinels.py).

The acdkit objects are made once per test by acdkit's own wiring (``bootstrap.open_pool``,
``RqJobQueue``) and used again after the failover: no restart, no new client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import pytest
from poolkit import RULES, T0, StepClock, ready_agent, task
from redis import ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, SimpleWorker
from rq.connections import parse_connection
from rq.serializers import JSONSerializer
from sentinels import SentinelGroup, wait_until
from test_agi_server import caller_presses, converse

from acdkit import dialplan_vars as dv
from acdkit.agi.routes import RouteContext, handlers
from acdkit.agi.server import AgiServer
from acdkit.ari.dialback import DialBacks, dial_back
from acdkit.bootstrap import open_pool
from acdkit.config import RedisSettings, Settings
from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import NotDurable, RedisUnavailable
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.jobqueue import RqJobQueue
from acdkit.store.callbacks import CallbackStore
from acdkit.store.connection import connect
from acdkit.store.durability import Acks
from acdkit.store.pool import Pool
from acdkit.store.primary import primary_of, sync_client
from acdkit.store.ratings import RatingStore
from acdkit.store.scripts import ClaimResult

pytestmark = pytest.mark.integration

T = TypeVar("T")
POLICY = NumberPolicy(max_pending_per_number=5, max_requests_per_caller=100)
CALLER = "+12015550199"
TRIES = 3  # an operation cut by the switch fails once; the caller's retry reaches the new primary


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    made = SentinelGroup(tmp_path)
    try:
        made.start()
        yield made
    finally:
        made.close()


def settings_for(group: SentinelGroup, **redis: object) -> Settings:
    return replace(Settings(), redis=RedisSettings(sentinels=group.sentinel_list,
                                                   master_name="acdkit", **redis))  # type: ignore[arg-type]


@pytest.fixture
async def pool(group: SentinelGroup) -> AsyncIterator[Pool]:
    made = await open_pool(settings_for(group, min_replicas_ack=1, ack_timeout_ms=2_000))
    try:
        yield made
    finally:
        await made.close()


def callback(task_id: str, number: str) -> Task:
    return Task(id=task_id, kind=TaskKind.CALLBACK, skill="sales", created_at=T0,
                enqueued_at=T0, number=number)


async def book(store: CallbackStore, task_id: str, number: str) -> Task:
    result = await store.book_callback(callback(task_id, number), policy=POLICY,
                                       caller_number=CALLER, now=T0)
    return result.task


async def retried(op: Callable[[], Awaitable[T]]) -> tuple[T, int]:
    """Run ``op`` as acdkit's callers do (the dispatcher's loop, RQ's retries): again after a
    ``RedisUnavailable``, up to ``TRIES`` times; its result and the tries it took."""
    for n in range(1, TRIES + 1):
        try:
            return await op(), n
        except RedisUnavailable:
            if n == TRIES:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


async def test_the_pool_and_rq_reach_the_primary_through_the_sentinels(
        group: SentinelGroup, pool: Pool) -> None:
    await pool.add_task(task("t1"), T0)
    jobs = RqJobQueue(primary_of(settings_for(group).redis))
    try:
        job_id = jobs.enqueue("speech", "builtins.len", "abcd")
        with group.client(group.data[0]) as primary:
            assert primary.exists("acdkit:{pool}:task:t1") == 1
            assert primary.lpos("rq:queue:speech", job_id) == 0
        worker = SimpleWorker([Queue("speech", connection=jobs.connection,
                                     serializer=JSONSerializer)],
                              connection=jobs.connection, serializer=JSONSerializer)
        assert worker.work(burst=True, with_scheduler=True)
        assert jobs.status(job_id) == "finished"
    finally:
        jobs.close()


def test_rqs_scheduler_rebuilds_a_client_that_follows_the_sentinels(
        group: SentinelGroup) -> None:
    """RQ's scheduler process rebuilds its client from the worker's (rq/scheduler.py 3.0):
    the rebuilt one must still ask the sentinels, before and after a failover."""
    connection = sync_client(primary_of(settings_for(group).redis))
    try:
        cls, connection_class, kwargs = parse_connection(connection)
        rebuilt = cls(connection_pool=ConnectionPool(connection_class=connection_class,
                                                     **kwargs))
        rebuilt.set("k", "before")
        _, new = group.failover()
        for _ in range(TRIES):  # redis-py's own retries cover the switch for sync clients
            try:
                rebuilt.set("k", "after")
                break
            except RedisConnectionError:  # one write cut by the switch
                pass
        with group.client(new) as primary:
            assert primary.get("k") == "after"
        rebuilt.close()
    finally:
        connection.close()


@pytest.mark.parametrize("fault", ["sentinel failover", "primary killed"])
async def test_bookings_and_claims_go_on_after_a_failover_without_a_restart(
        group: SentinelGroup, pool: Pool, fault: str) -> None:
    store = CallbackStore(pool, lock_ttl=5.0)
    jobs = RqJobQueue(primary_of(settings_for(group).redis))
    try:
        before = await book(store, "cb-before", "+12015550101")
        old = group.primary()
        if fault == "sentinel failover":
            _, new = group.failover()
        else:
            group.kill(old)
            new = group.wait_new_primary(old)
        assert new != old
        # The other replica follows the new primary once the sentinels tell it to.
        await asyncio.to_thread(wait_until, lambda: group.online_replicas(new) >= 1, 30.0,
                                "a replica of the new primary")
        # A caller who was told "not booked" books again: a new callback each time.
        attempts = iter(range(TRIES))
        after, tries = await retried(
            lambda: book(store, f"cb-after-{next(attempts)}", "+12015550102"))
        await ready_agent(pool, "a1")
        claimed, _ = await retried(lambda: pool.try_claim("a1", after.id, T0))
        lock, _ = await retried(lambda: store.acquire_dial_lock(after.id))
        job_id = jobs.enqueue("callbacks", "acdkit.jobs.dial_back", after.id)
    finally:
        jobs.close()
    assert claimed is ClaimResult.OK and lock is not None and tries <= TRIES
    with group.client(new) as primary:
        assert primary.info("replication")["role"] == "master"
        # Confirmed before the fault, so the new primary has it.
        assert primary.hget(f"acdkit:{{pool}}:task:{before.id}", "state") == "queued"
        assert primary.hget(f"acdkit:{{pool}}:task:{after.id}", "state") == "reserved"
        assert primary.exists(f"acdkit:{{pool}}:lock:dial:{after.id}") == 1
        assert primary.exists(f"rq:job:{job_id}") == 1


async def test_a_replaced_primary_confirms_nothing_and_the_pool_follows_the_new_one(
        group: SentinelGroup, pool: Pool) -> None:
    """``SENTINEL FAILOVER`` leaves the old primary taking writes (and a replica still
    following it) until the sentinels demote it, seconds later. Its confirmations are worth
    nothing: that replica drops them when it follows the new primary. ``confirm`` asks the
    sentinels and refuses; the next operation goes to the new primary."""
    await pool.durability.confirm()  # the pool is connected to the first primary
    old, new = await forced_failover(group)
    with pytest.raises(NotDurable):
        await pool.durability.confirm()
    assert still_primary(group, old), "the old primary was demoted before the test wrote to it"
    await confirmed_on(group, new, pool)
    assert pool.redis.connection_pool.master_address[1] == new  # type: ignore[attr-defined]


async def forced_failover(group: SentinelGroup) -> tuple[int, int]:
    """``SENTINEL FAILOVER`` done: the old primary's port and the new one's."""
    old = group.primary()
    group._ask(group.sentinels[0], "SENTINEL", "FAILOVER", "acdkit")
    return old, await asyncio.to_thread(group.wait_new_primary, old)


def still_primary(group: SentinelGroup, port: int) -> bool:
    with group.client(port) as zombie:
        return bool(zombie.info("replication")["role"] == "master")


async def confirmed_on(group: SentinelGroup, new: int, pool: Pool) -> None:
    """Once the new primary has a replica, ``confirm`` succeeds within ``TRIES``."""
    await asyncio.to_thread(wait_until, lambda: group.online_replicas(new) >= 1, 30.0,
                            "a replica of the new primary")
    _, tries = await retried(pool.durability.confirm)
    assert tries <= TRIES


async def test_a_write_to_a_replaced_primary_is_fenced_where_it_ran(
        group: SentinelGroup, pool: Pool) -> None:
    """The writes go on the shared connection (store/multiplex.py), which stays on the old
    primary until it breaks. A pool that has already found the new primary must not vouch
    for them: the fence runs on the shared connection, where they ran, and is refused."""
    await pool.durability.confirm()  # the shared connection is made, to the first primary
    old, new = await forced_failover(group)
    await pool.redis.connection_pool.get_master_address()  # type: ignore[attr-defined]
    assert pool.redis.connection_pool.master_address[1] == new  # type: ignore[attr-defined]
    demoted = not still_primary(group, old)
    with pytest.raises((NotDurable, RedisUnavailable)):
        await pool.redis.set("booked", "1")  # to the old primary, on the shared connection
        await pool.durability.confirm()
    assert not demoted, "the old primary was demoted before the test wrote to it"
    await confirmed_on(group, new, pool)
    shared = pool.redis.multiplexed  # type: ignore[attr-defined]
    assert shared.address()[1] == new  # the shared connection followed


async def test_without_replicas_nothing_is_confirmed_and_nothing_is_kept(
        group: SentinelGroup) -> None:
    pool = await open_pool(settings_for(group, min_replicas_ack=1, ack_timeout_ms=300))
    store = CallbackStore(pool, lock_ttl=5.0)
    try:
        await pool.add_task(task("t1"), T0)
        await ready_agent(pool, "a1")
        for port in group.data[1:]:
            group.stop(port)
        wait_until(lambda: group.online_replicas(group.data[0]) == 0, 10.0, "no replica")

        with pytest.raises(NotDurable):
            await book(store, "cb-lost", "+12015550103")
        assert await store.pending_for("+12015550103") == []
        lost = await pool.get_task("cb-lost")
        assert lost is not None and lost.state is TaskState.CANCELLED
        assert lost.outcome == "not_durable"

        with pytest.raises(NotDurable):
            await pool.try_claim("a1", "t1", T0)
        held = await pool.get_task("t1")
        agent = await pool.get_agent("a1")
        assert held is not None and held.state is TaskState.QUEUED and held.agent_id is None
        assert agent is not None and agent.state.value == "ready"

        with pytest.raises(NotDurable):  # the dispatcher's claims too: undone, nobody rung
            await pool.claim_next(["a1"], T0)
        with pytest.raises(NotDurable):
            await pool.claim_for_task("t1", T0)
        assert (await pool.get_task("t1")).state is TaskState.QUEUED  # type: ignore[union-attr]

        with pytest.raises(NotDurable):
            await store.acquire_dial_lock("t1")
        assert not await store.dial_lock_held("t1")

        # An attempt whose record no replica holds is not dialed: serve reports it failed,
        # not dialed, before it touches Asterisk (its ARI parts are never reached here).
        await pool.add_task(callback("cb-dial", "+12015550105"), T0)
        await pool.redis.hset(pool.keys.task("cb-dial"), mapping={"state": "reserved",
                                                                   "agent_id": "a1"})
        await store.open_attempt("cb-dial", 1, "a1", T0, number="+12015550105")
        ctx = DialBacks(control=None, pool=pool, clock=StepClock(), callbacks=store,  # type: ignore[arg-type]
                        sessions=None, calls=None, spawner=None, connector=None,  # type: ignore[arg-type]
                        endings=None, center=None, agents=None, requests=None)  # type: ignore[arg-type]
        await dial_back(ctx, {"task_id": "cb-dial", "attempt": 1, "agent_id": "a1"})
        attempt = await store.get_attempt("cb-dial", 1)
        assert attempt is not None and attempt.outcome is DialOutcome.FAILED

        # One replica back: the same objects confirm again.
        group.start_data(group.data[1], replica_of=group.data[0])
        await asyncio.to_thread(wait_until, lambda: group.online_replicas(group.data[0]) == 1,
                                30.0, "a replica online")
        booked = await book(store, "cb-kept", "+12015550104")
        assert booked.state is TaskState.QUEUED
        assert await pool.try_claim("a1", "t1", T0) is ClaimResult.OK
        assert await store.acquire_dial_lock("t1") is not None
    finally:
        await pool.close()


async def test_a_primary_that_refuses_writes_without_replicas_raises_not_durable(
        group: SentinelGroup) -> None:
    """``min-replicas-to-write 1`` on the primary (docs/redis-ha.md): the write itself is
    refused (NOREPLICAS), nothing is stored, and acdkit says so with the same error."""
    pool = await open_pool(settings_for(group, min_replicas_ack=1, ack_timeout_ms=300))
    store = CallbackStore(pool, lock_ttl=5.0)
    try:
        with group.client(group.data[0]) as primary:
            primary.config_set("min-replicas-to-write", 1)
            primary.config_set("min-replicas-max-lag", 1)
        for port in group.data[1:]:
            group.stop(port)
        with group.client(group.data[0]) as primary:
            # The primary notices missing replicas once their last ack is older than the lag.
            wait_until(
                lambda: primary.info("replication").get("min_slaves_good_slaves", 0) == 0,
                30.0, "the primary to count no good replica")
        with pytest.raises(NotDurable):
            await book(store, "cb-refused", "+12015550105")
        assert await pool.get_task("cb-refused") is None
    finally:
        await pool.close()


async def test_a_caller_whose_booking_no_replica_confirmed_is_not_told_it_is_booked(
        redis_url: str) -> None:
    """Dialplan mode, the session's Redis (it has no replica) and min_replicas_ack 1: the
    callback-offer route fails as for any Redis outage (ACDKIT_STATUS=failed, which the
    dialplan sends to acdkit-failure: "I'm sorry, please try to call later"), the caller
    never hears cb-booked, and the callback is cancelled, not kept."""
    clock = StepClock()
    pool = Pool(await connect(redis_url), RULES, clock=clock, acks=Acks(1, 200))
    ctx = RouteContext(Settings(), pool, CallbackStore(pool), NumberPolicy(), clock,
                       RatingStore(pool))
    server = AgiServer(handlers(ctx), "127.0.0.1", 0, header_timeout=1.0)
    server.port = await server.start()
    try:
        commands = await converse(server.port, caller_presses(
            {"acdkit/overflow-offer": "1", "acdkit/cb-number-confirm": "1"}))
        tasks = await pool.list_tasks()
    finally:
        await server.close()
        await pool.close()
    assert commands[-1] == f"SET VARIABLE {dv.STATUS} failed"
    assert not any("cb-booked" in line for line in commands)
    assert [(t.kind, t.state, t.outcome) for t in tasks] == [
        (TaskKind.CALLBACK, TaskState.CANCELLED, "not_durable")]
