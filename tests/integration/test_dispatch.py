"""The dispatcher against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import pytest
from poolkit import RULES, T0, StepClock, ready_agent, task

from acdkit.core.agents import Agent, AgentEvent, AgentState
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.dispatch import Dispatcher
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration


class Recorder:
    """An on_reserved that records what it was given (and may fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.got: list[tuple[str, str]] = []
        self.fail = fail
        self.event = asyncio.Event()

    async def __call__(self, agent: Agent, task: Task) -> None:
        assert agent.state is AgentState.RESERVED and agent.task_id == task.id
        assert task.state is TaskState.RESERVED and task.agent_id == agent.id
        self.got.append((agent.id, task.id))
        self.event.set()
        if self.fail:
            raise RuntimeError("the phone exploded")


class ClaimLog:
    """Wraps ``pool.claim_next``: the agents of each claim, in the order they started, and
    the most claims in flight at once; with ``hold``, each claim waits for it first."""

    def __init__(self, pool: Pool, hold: asyncio.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.running = self.most = 0
        self.real = pool.claim_next
        self.hold = hold
        pool.claim_next = self  # type: ignore[method-assign,assignment]

    async def __call__(self, agent_ids: list[str], *args: object, **kw: object) -> object:
        self.calls.append(list(agent_ids))
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.hold is not None:
                await self.hold.wait()
            return await self.real(agent_ids, *args, **kw)  # type: ignore[arg-type]
        finally:
            self.running -= 1


def dispatcher(pool: Pool, clock: StepClock, recorder: Recorder, **kw: float) -> Dispatcher:
    return Dispatcher(pool, RULES, clock, recorder, **kw)  # type: ignore[arg-type]


async def test_dispatch_agent_takes_the_best_task_it_may_take(pool: Pool,
                                                              clock: StepClock) -> None:
    await pool.add_tasks([
        task("old-sales", "sales", T0 - 300),
        task("vip-support", "support", T0, priority=20),
        task("french", "support", T0 - 3600, required={"lang": "fr"}),
        task("expert", "support", T0 - 3600, min_level=9),
    ])
    await ready_agent(pool, "a1", {"sales": 5, "support": 5})
    recorder = Recorder()
    d = dispatcher(pool, clock, recorder)
    got = await d.dispatch_agent("a1")
    assert got is not None and got.id == "vip-support"
    await d.wait_idle()
    assert recorder.got == [("a1", "vip-support")]
    assert await d.dispatch_agent("a1") is None  # reserved now
    assert await d.dispatch_agent("ghost") is None


async def test_dispatch_agent_looks_below_the_heads_it_may_not_take(pool: Pool,
                                                                    clock: StepClock) -> None:
    await pool.add_tasks([task(f"fr{i}", at=T0 - 100 + i, required={"lang": "fr"})
                          for i in range(25)] + [task("plain", at=T0)])
    await ready_agent(pool, "a1")
    d = dispatcher(pool, clock, Recorder(), heads=10)
    got = await d.dispatch_agent("a1")
    assert got is not None and got.id == "plain"


async def test_agents_asking_together_share_one_claim_and_each_gets_its_own_task(
        pool: Pool, clock: StepClock) -> None:
    await pool.add_tasks([task(f"t{i}", at=T0 + i) for i in range(3)]
                         + [task("fr", at=T0 - 60, required={"lang": "fr"})])
    for name in ("a1", "a2", "a3", "a4"):
        await ready_agent(pool, name)
    calls = ClaimLog(pool).calls
    recorder = Recorder()
    d = dispatcher(pool, clock, recorder)
    got = await asyncio.gather(*(d.dispatch_agent(a) for a in ("a1", "a2", "a3", "a4")))
    await d.wait_idle()
    # Asked in one turn of the event loop: one round trip serves them in the order they
    # asked, each with its own task; the French task waits.
    assert calls == [["a1", "a2", "a3", "a4"]]
    assert [t.id if t else None for t in got] == ["t0", "t1", "t2", None]
    assert sorted(recorder.got) == [("a1", "t0"), ("a2", "t1"), ("a3", "t2")]
    # An agent that asks while a claim is in flight waits for the next one.
    await pool.add_tasks([task("t3", at=T0 + 3)])
    for name in ("a1", "a2"):
        await pool.move_task(f"t{int(name[1]) - 1}", TaskEvent.COMPLETE, T0, expect_agent=name)
        await pool.move_agent(name, AgentEvent.END, T0)
        await pool.move_agent(name, AgentEvent.WRAPPED, T0)
    calls.clear()
    first = asyncio.create_task(d.dispatch_agent("a1"))
    while not calls:  # until a1's claim is on its way
        await asyncio.sleep(0)
    second = await d.dispatch_agent("a2")
    assert calls == [["a1"], ["a2"]]
    assert ((await first).id, second) == ("t3", None)  # type: ignore[union-attr]


async def test_a_full_batch_waiting_starts_a_second_claim_beside_the_first(
        pool: Pool, clock: StepClock) -> None:
    await pool.add_tasks([task(f"t{i}", at=T0 + i) for i in range(5)])
    names = [f"a{i}" for i in range(1, 6)]
    for name in names:
        await ready_agent(pool, name)
    claims = ClaimLog(pool)
    d = dispatcher(pool, clock, Recorder(), batch=2, in_flight=2)
    got = await asyncio.gather(*(d.dispatch_agent(a) for a in names))
    await d.wait_idle()
    # Two full batches run at once; the agent left over is served by the claim that ends
    # last, alone: never a third claim in flight.
    assert claims.calls == [["a1", "a2"], ["a3", "a4"], ["a5"]]
    assert claims.most == 2
    assert sorted(t.id for t in got if t) == [f"t{i}" for i in range(5)]  # each its own


async def test_dispatch_task_reserves_the_longest_ready_eligible_agent(
        pool: Pool, clock: StepClock) -> None:
    await ready_agent(pool, "fresh", now=T0)
    await ready_agent(pool, "waiting", now=T0 - 60)
    await ready_agent(pool, "novice", {"sales": 1}, now=T0 - 600)
    await pool.add_task(task("t1", min_level=3))
    recorder = Recorder()
    d = dispatcher(pool, clock, recorder)
    agent = await d.dispatch_task("t1")
    assert agent is not None and agent.id == "waiting"
    assert await d.dispatch_task("t1") is None
    assert await d.dispatch_task("missing") is None


async def test_a_failed_connect_releases_the_reservation(pool: Pool, clock: StepClock,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    await pool.add_tasks([task("t0", at=T0 - 1), task("t1", at=T0), task("t2", at=T0 + 1)])
    await ready_agent(pool, "a1")
    d = dispatcher(pool, clock, Recorder(fail=True))
    with caplog.at_level(logging.ERROR, logger="acdkit.dispatch"):
        assert (await d.dispatch_agent("a1")).id == "t0"  # type: ignore[union-attr]
        await d.wait_idle()
    assert "connecting agent a1 failed" in caplog.text
    back = await pool.get_task("t0")
    assert back is not None and back.state is TaskState.QUEUED and back.agent_id is None
    assert await pool.queue_position("t0") == 0
    agent = await pool.get_agent("a1")
    assert agent is not None
    assert (agent.state, agent.pause_reason) == (AgentState.PAUSED, "connect_failed")


class Ringing:
    """An on_reserved that rings until cancelled and notes the tasks whose connect ended."""

    def __init__(self) -> None:
        self.ended: list[str] = []

    async def __call__(self, agent: Agent, task: Task) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            self.ended.append(task.id)


async def two_ready_agents_and_tasks(pool: Pool) -> None:
    await pool.add_tasks([task("t0", at=T0), task("t1", at=T0 + 1)])
    await ready_agent(pool, "a1")
    await ready_agent(pool, "a2")


async def test_stop_ends_the_connects_in_flight_with_their_clean_up(pool: Pool,
                                                                    clock: StepClock) -> None:
    """serve stops the dispatcher's connects (an agent ringing) before it gives its lease up:
    they ran in the dispatcher's own tasks, which no stop reached until the process ended."""
    ringing = Ringing()
    await two_ready_agents_and_tasks(pool)
    d = Dispatcher(pool, RULES, clock, ringing)
    assert await d.dispatch_agent("a1") is not None
    assert await d.dispatch_agent("a2") is not None
    await asyncio.sleep(0)  # the connects started
    assert await d.stop(2.0) is True
    assert sorted(ringing.ended) == ["t0", "t1"]
    assert await d.stop(2.0) is True  # nothing left


async def test_stop_lets_a_claim_in_flight_end_stops_its_connect_and_starts_no_other(
        pool: Pool, clock: StepClock) -> None:
    """A claim is not cancelled (Redis may have reserved already): stop waits for it, then
    stops the connect it started; an agent asking after the stop gets nothing."""
    go = asyncio.Event()
    ringing = Ringing()
    await two_ready_agents_and_tasks(pool)
    claims = ClaimLog(pool, hold=go)
    d = Dispatcher(pool, RULES, clock, ringing)
    asked = asyncio.create_task(d.dispatch_agent("a1"))
    while not claims.calls:
        await asyncio.sleep(0)
    stopping = asyncio.create_task(d.stop(2.0))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # the claim is still on its way
    go.set()
    assert await stopping is True
    got = await asked
    assert got is not None and got.id == "t0"
    assert ringing.ended == ["t0"]  # its connect was started, then stopped
    assert await d.dispatch_agent("a2") is None
    assert claims.calls == [["a1"]]


async def test_stop_says_when_a_connect_did_not_end_in_time(pool: Pool,
                                                           clock: StepClock) -> None:
    release = asyncio.Event()

    async def slow_clean_up(agent: Agent, task: Task) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await release.wait()

    await pool.add_tasks([task("t0", at=T0)])
    await ready_agent(pool, "a1")
    d = Dispatcher(pool, RULES, clock, slow_clean_up)
    assert await d.dispatch_agent("a1") is not None
    await asyncio.sleep(0)
    assert await d.stop(0.2) is False
    release.set()
    assert await d.stop(2.0) is True


async def test_a_preferred_task_goes_to_others_when_its_time_is_up(pool: Pool,
                                                                   clock: StepClock) -> None:
    await ready_agent(pool, "other")
    await pool.add_task(task("t1", preferred_agent="chosen", preferred_until=T0 + 30))
    d = dispatcher(pool, clock, Recorder())
    assert await d.dispatch_task("t1") is None
    assert await d.dispatch_agent("other") is None
    assert d.next_wakeup() == T0 + 30
    clock.advance(29)
    assert await d.wake_due() == 0
    clock.advance(1)
    assert await d.wake_due() == 1
    held = await pool.get_task("t1")
    assert held is not None and held.agent_id == "other"


async def test_each_held_task_goes_to_others_in_turn_as_its_time_is_up(
        pool: Pool, clock: StepClock) -> None:
    """The dispatcher learns only the next time a held task's agent is up; the claim it makes
    then tells it the one after (store/lua/_lib.lua ``next_held_end``)."""
    await ready_agent(pool, "other", now=T0 - 20)
    await ready_agent(pool, "other2", now=T0 - 10)
    await pool.add_task(task("t1", preferred_agent="gone", preferred_until=T0 + 30))
    await pool.add_task(task("t2", preferred_agent="gone", preferred_until=T0 + 60))
    d = dispatcher(pool, clock, Recorder())
    assert await d.dispatch_agent("other") is None
    assert d.next_wakeup() == T0 + 30
    clock.advance(30)
    assert await d.wake_due() == 1
    assert d.next_wakeup() == T0 + 60
    clock.advance(30)
    assert await d.wake_due() == 1
    assert d.next_wakeup() is None
    held = {t: (await pool.get_task(t)).agent_id for t in ("t1", "t2")}  # type: ignore[union-attr]
    assert held == {"t1": "other", "t2": "other2"}


async def test_the_preferred_agent_gets_its_task_first(pool: Pool, clock: StepClock) -> None:
    await ready_agent(pool, "other", now=T0 - 100)
    await ready_agent(pool, "chosen", now=T0)
    await pool.add_task(task("t1", preferred_agent="chosen", preferred_until=T0 + 30))
    agent = await dispatcher(pool, clock, Recorder()).dispatch_task("t1")
    assert agent is not None and agent.id == "chosen"


async def test_the_sweep_promotes_due_tasks_and_serves_ready_agents(pool: Pool,
                                                                    clock: StepClock) -> None:
    await pool.add_task(task("cb", kind=TaskKind.CALLBACK, state=TaskState.SCHEDULED,
                             due_at=T0 + 60))
    await pool.add_task(task("pref", "support", preferred_agent="x", preferred_until=T0 + 30))
    await ready_agent(pool, "a1")
    await ready_agent(pool, "a2", {"support": 1})
    recorder = Recorder()
    d = dispatcher(pool, clock, recorder)
    assert await d.sweep() == 0
    clock.advance(61)
    assert await d.sweep() == 2
    await d.wait_idle()
    assert sorted(recorder.got) == [("a1", "cb"), ("a2", "pref")]


async def test_the_sweep_serves_many_ready_agents_in_batches_and_reports_a_failed_claim(
        pool: Pool, clock: StepClock) -> None:
    await pool.add_tasks([task(f"t{i}", at=T0 + i) for i in range(4)])
    for i in range(5):  # ready longest first: a0 .. a4
        await ready_agent(pool, f"a{i}", now=T0 - 100 + i)
    calls = ClaimLog(pool).calls
    recorder = Recorder()
    d = dispatcher(pool, clock, recorder, batch=2)
    assert await d.sweep() == 4
    await d.wait_idle()
    assert calls == [["a0", "a1"], ["a2", "a3"], ["a4"]]
    assert sorted(recorder.got) == [("a0", "t0"), ("a1", "t1"), ("a2", "t2"), ("a3", "t3")]

    async def broken(agent_ids: list[str], *args: object, **kw: object) -> object:
        raise RuntimeError("the claim broke")

    pool.claim_next = broken  # type: ignore[method-assign,assignment]
    await pool.add_task(task("t4", at=T0 + 4))
    with pytest.raises(RuntimeError, match="the claim broke"):
        await d.sweep()


async def test_the_sweep_releases_stale_reservations(pool: Pool, clock: StepClock) -> None:
    await pool.add_task(task("t1"))
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)  # a dispatcher that died before connecting
    d = dispatcher(pool, clock, Recorder(), stale_after=120)
    clock.advance(100)
    await d.sweep()
    assert (await pool.get_agent("a1")).state is AgentState.RESERVED  # type: ignore[union-attr]
    clock.advance(21)
    await d.sweep()  # released to the queue, then served again at once
    held = await pool.get_task("t1")
    assert held is not None and held.state is TaskState.RESERVED
    assert [e.event for e in await pool.audit.history("t1")] == [
        "add", "reserve", "release", "reserve"]


async def test_run_dispatches_on_wake_ups(pool: Pool, clock: StepClock) -> None:
    recorder = Recorder()
    d = dispatcher(pool, clock, recorder, sweep_interval=3600)
    runner = asyncio.create_task(d.run())
    try:
        await asyncio.sleep(0.2)  # subscribed and swept
        await ready_agent(pool, "a1")
        await pool.add_task(task("t1"))  # -> task_added t1 -> dispatch_task
        await asyncio.wait_for(recorder.event.wait(), 5)
        assert recorder.got == [("a1", "t1")]
        recorder.event.clear()
        await pool.add_task(task("t2"))  # no ready agent: waits
        await pool.move_task("t1", TaskEvent.COMPLETE, T0 + 1)
        await pool.move_agent("a1", AgentEvent.END, T0 + 1)
        await pool.move_agent("a1", AgentEvent.WRAPPED, T0 + 2)  # -> agent_ready a1
        await asyncio.wait_for(recorder.event.wait(), 5)
        assert recorder.got[-1] == ("a1", "t2")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_the_sweep_frees_an_agent_whose_reserved_task_moved_on(pool: Pool,
                                                                     clock: StepClock) -> None:
    await pool.add_task(task("t1"))
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)
    await pool.move_task("t1", TaskEvent.CANCEL, T0 + 1)  # the agent side was never moved
    clock.advance(301)
    await dispatcher(pool, clock, Recorder()).sweep()
    agent = await pool.get_agent("a1")
    assert agent is not None and (agent.state, agent.task_id) == (AgentState.WRAP_UP, None)


async def test_a_scheduled_task_is_dispatched_when_due_without_waiting_for_a_sweep(
        pool: Pool, clock: StepClock) -> None:
    await ready_agent(pool, "a1")
    await pool.add_task(task("cb", kind=TaskKind.CALLBACK, state=TaskState.SCHEDULED,
                             due_at=T0 + 60))
    recorder = Recorder()
    d = dispatcher(pool, clock, recorder)
    await d.sweep()
    assert d.next_wakeup() == T0 + 60
    clock.advance(60)
    assert await d.wake_due() == 1
    await d.wait_idle()
    assert recorder.got == [("a1", "cb")]
    assert d.next_wakeup() is None


async def test_run_survives_redis_being_down(caplog: pytest.LogCaptureFixture,
                                             clock: StepClock) -> None:
    from acdkit.store.connection import client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = Pool(client(f"redis://127.0.0.1:{port}/0"), RULES, clock=clock)
    d = dispatcher(down, clock, Recorder())
    with caplog.at_level(logging.WARNING, logger="acdkit.dispatch"):
        runner = asyncio.create_task(d.run())
        await asyncio.sleep(0.8)
        assert not runner.done()  # still retrying
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    await down.close()
    assert "dispatcher: " in caplog.text and "retrying in 0.5 s" in caplog.text
