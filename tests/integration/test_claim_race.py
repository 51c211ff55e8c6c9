"""Invariant 1 under a real race: 8 dispatcher PROCESSES, 1,000 tasks, 50 agents.

Each process has its own connection and event loop and offers work to every agent over and
over; agents cycle reserve → (answer → complete, or no answer → task back in line) → wrap-up
→ ready until the pool is empty. The audit stream (one total order: the scripts append in the
same step as they change state) and the final state then prove: no task was held by two agents,
no agent held two tasks at overlapping times, every task was completed exactly once.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections import Counter
from typing import cast

import pytest
import redis
from poolkit import RULES, T0

from acdkit.core.agents import Agent, AgentEvent, AgentState
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.dispatch import Dispatcher
from acdkit.ports import SystemClock
from acdkit.store.audit import AuditEntry
from acdkit.store.connection import connect
from acdkit.store.keys import Keys
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration

PROCESSES = 8
TASKS = 1_000
AGENTS = 50
SKILLS = ("sales", "support")
NO_ANSWER_RATE = 0.1
DEADLINE = 90.0
BIG = 10_000_000  # keep every audit entry: the proof reads them all
CLAIMS = "race:claims"  # reservations made per worker, counted by the workers


def agent_skills(i: int) -> dict[str, int]:
    return {"sales": 5, "support": 5} if i % 2 else {SKILLS[i % 4 // 2]: 5}


async def _setup(url: str) -> None:
    pool = Pool(await connect(url), RULES, audit_maxlen=BIG)
    try:
        for i in range(AGENTS):
            await pool.save_agent(Agent(id=f"a{i}", skills=agent_skills(i)), T0)
            await pool.move_agent(f"a{i}", AgentEvent.LOGIN, T0, reach=f"PJSIP/a{i}")
        await pool.add_tasks(
            Task(id=f"t{i}", kind=TaskKind.CALL, skill=SKILLS[i % 2], created_at=T0,
                 enqueued_at=T0 + i, priority=i % 3) for i in range(TASKS))
    finally:
        await pool.close()


async def _work(url: str, seed: int) -> None:
    pool = Pool(await connect(url), RULES, audit_maxlen=BIG)
    rng = random.Random(seed)
    clock = SystemClock()

    async def serve(agent: Agent, task: Task) -> None:
        """What the connector and the agent would do with the reservation."""
        await asyncio.sleep(rng.random() * 0.003)
        if rng.random() < NO_ANSWER_RATE:
            await pool.move_agent(agent.id, AgentEvent.NO_ANSWER, clock.now(),
                                  expect_task=task.id, max_misses=BIG)  # task back in line
        else:
            await pool.move_agent(agent.id, AgentEvent.ANSWER, clock.now(), expect_task=task.id)
            await pool.move_task(task.id, TaskEvent.CONNECT, clock.now(), expect_agent=agent.id)
            await pool.move_task(task.id, TaskEvent.COMPLETE, clock.now(), expect_agent=agent.id)
            await pool.move_agent(agent.id, AgentEvent.END, clock.now(), expect_task=task.id)
        await pool.move_agent(agent.id, AgentEvent.WRAPPED, clock.now())

    async def counted(agent: Agent, task: Task) -> None:
        await pool.redis.hincrby(CLAIMS, f"worker{seed}", 1)
        await serve(agent, task)

    dispatcher = Dispatcher(pool, RULES, clock, counted, heads=5, batch=8)
    agent_ids = [f"a{i}" for i in range(AGENTS)]
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            rng.shuffle(agent_ids)
            # All at once: the dispatcher serves them in shared claims of up to 8 agents.
            await asyncio.gather(*(dispatcher.dispatch_agent(a) for a in agent_ids))
            for _, task in await pool.candidates(SKILLS, 3):
                await dispatcher.dispatch_task(task.id)
            if not any(s.waiting for s in await pool.stats(SKILLS)):
                await dispatcher.wait_idle()  # our own reservations may send tasks back
                if not any(s.waiting for s in await pool.stats(SKILLS)):
                    return
        raise TimeoutError(f"worker {seed}: tasks still waiting after {DEADLINE} s")
    finally:
        await dispatcher.wait_idle()
        await pool.close()


def race_worker(url: str, seed: int) -> None:
    asyncio.run(_work(url, seed))


def _check_history(entries: list[AuditEntry]) -> Counter[str]:
    """Replay the global stream; fail on any double hold. Return completions per task."""
    task_holder: dict[str, str] = {}
    agent_holds: dict[str, str] = {}
    completed: Counter[str] = Counter()
    for e in entries:
        if e.kind == "task":
            if e.event == "reserve":
                agent = e.fields["agent"]
                assert e.entity not in task_holder, f"{e.entity} held twice at {e.id}"
                assert agent not in agent_holds, f"{agent} holds two tasks at {e.id}"
                task_holder[e.entity] = agent
            elif e.fields.get("from") in ("reserved", "active") and \
                    e.fields.get("to") not in ("reserved", "active"):
                task_holder.pop(e.entity)
            if e.event == "complete":
                completed[e.entity] += 1
        elif e.kind == "agent":
            if e.event == "reserve":
                assert task_holder.get(e.fields["task"]) == e.entity  # same script, same step
                agent_holds[e.entity] = e.fields["task"]
            elif e.fields.get("to") not in ("reserved", "on_call"):
                agent_holds.pop(e.entity, None)
    assert task_holder == {} and agent_holds == {}
    return completed


def test_eight_dispatcher_processes_never_double_assign(redis_url: str) -> None:
    asyncio.run(_setup(redis_url))
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=race_worker, args=(redis_url, seed), name=f"dispatcher{seed}")
               for seed in range(PROCESSES)]
    started = time.monotonic()
    for proc in workers:
        proc.start()
    for proc in workers:
        proc.join(DEADLINE + 30)
    assert [p.exitcode for p in workers] == [0] * PROCESSES
    elapsed = time.monotonic() - started

    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = Keys()
        stream = cast(list[tuple[str, dict[str, str]]], raw.xrange(keys.kpi))
        entries = [AuditEntry.parse(i, f) for i, f in stream]
        completed = _check_history(entries)
        assert completed == Counter({f"t{i}": 1 for i in range(TASKS)})
        reserves = Counter(e.entity for e in entries if e.kind == "task" and e.event == "reserve")
        assert sum(reserves.values()) > TASKS  # the no-answers really sent tasks back

        for i in range(TASKS):
            state, agent_id = raw.hmget(keys.task(f"t{i}"), ["state", "agent_id"])
            assert state == TaskState.COMPLETED and agent_id
        for i in range(AGENTS):
            state, task_id = raw.hmget(keys.agent(f"a{i}"), ["state", "task_id"])
            assert state == AgentState.READY and task_id == ""
        assert all(raw.zcard(keys.queue(s)) == 0 for s in SKILLS)
        claims = cast(dict[str, str], raw.hgetall(CLAIMS))
        # The race was real: every process made reservations from the one pool.
        assert sorted(claims) == sorted(f"worker{seed}" for seed in range(PROCESSES))
        assert all(int(count) > 0 for count in claims.values())
        assert sum(int(count) for count in claims.values()) == sum(reserves.values())
    finally:
        raw.close()
    print(f"\n{PROCESSES} processes served {TASKS} tasks in {elapsed:.1f} s; claims: {claims}")
