"""Dispatcher benchmark: claims per second and claim latency against a real redis-server.

A pool of 100,000 queued tasks over 20 skills and 1,000 logged-in agents (1-3 skills each,
some with a language attribute that some tasks require). Two ways to hand an agent its task:

- **acdkit**: ``Dispatcher.dispatch_agent`` — one round trip: the claim script reads the heads
  of the agent's skill queues (sorted sets scored by ``routing.pool_score``), picks by the
  routing rule and reserves (``store/claims.py``); then the same claim for **batches** of
  ready agents, many agents per round trip, as a busy dispatcher makes them;
- **naive**: what a periodic scanner does — load every queued task (through the same
  one-round-trip script), scan them in Python with the same ``best_task``, claim with the
  same script.

After each claim the agent completes the task and is ready again (not timed). Prints the
figures and their ratio. Then, on a fresh pool of 20,000 tasks: the cost of a claim when
``--held`` tasks of each skill wait at the head of its line for a preferred agent who is not
there (callers who chose an agent; store/lua/_lib.lua holds them out of the skill queue).
``--out FILE.json`` writes the figures. Starts its own redis-server.

    python tests/bench/bench_dispatch.py --out var/results/bench-dispatch.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from redis.utils import HIREDIS_AVAILABLE

from acdkit.cli.common import run
from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.routing import PriorityRules, best_task
from acdkit.core.tasks import Task, TaskEvent, TaskKind
from acdkit.dispatch import Dispatcher
from acdkit.ports import SystemClock
from acdkit.store.connection import connect
from acdkit.store.pool import Pool
from acdkit.store.scripts import ClaimResult

RULES = PriorityRules(vip_weight=30)
KINDS = list(TaskKind)


def start_redis() -> tuple[subprocess.Popen[bytes], str, Path]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: run `make deps`")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    workdir = Path(tempfile.mkdtemp(prefix="acdkit-bench-"))
    proc = subprocess.Popen(
        [binary, "--save", "", "--appendonly", "no", "--port", str(port), "--bind",
         "127.0.0.1", "--dir", str(workdir), "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    else:
        proc.kill()
        sys.exit("redis-server did not start")
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0", workdir


def make_agents(count: int, skills: list[str], rng: random.Random) -> list[Agent]:
    return [Agent(id=f"a{i}", skills={s: rng.randint(3, 9)
                                      for s in rng.sample(skills, rng.randint(1, 3))},
                  attributes={"lang": "fr"} if rng.random() < 0.2 else {})
            for i in range(count)]


def make_tasks(count: int, skills: list[str], agents: int, now: float,
               rng: random.Random) -> list[Task]:
    tasks = []
    for i in range(count):
        preferred = rng.random() < 0.02
        tasks.append(Task(
            id=f"t{i}", kind=rng.choice(KINDS), skill=rng.choice(skills), created_at=now,
            enqueued_at=now - rng.uniform(0, 3600), priority=rng.randint(-5, 10),
            min_level=rng.randint(1, 5),
            required={"lang": "fr"} if rng.random() < 0.05 else {},
            attributes={"vip": "yes"} if rng.random() < 0.03 else {},
            preferred_agent=f"a{rng.randrange(agents)}" if preferred else None,
            preferred_until=now + 600 if preferred else None))
    return tasks


async def naive_dispatch(pool: Pool, agent_id: str, skills: list[str],
                         clock: SystemClock) -> Task | None:
    """A scanner's dispatch: every queued task from Redis, the best one found in Python.

    It loads the tasks through the same one-round-trip script as acdkit (all of them instead
    of a few heads), so the difference measured is the algorithm, not the client.
    """
    agent = await pool.get_agent(agent_id)
    assert agent is not None
    candidates = await pool.candidates(skills, 10**9)
    now = clock.now()
    while (task := best_task(agent, candidates, now)) is not None:
        if await pool.try_claim(agent_id, task.id, now) is ClaimResult.OK:
            return task
        candidates = [(s, t) for s, t in candidates if t.id != task.id]
    return None


async def recycle(pool: Pool, agent_id: str, task: Task, now: float) -> None:
    """The agent completes the task and is ready again."""
    await pool.move_task(task.id, TaskEvent.COMPLETE, now, expect_agent=agent_id)
    await pool.move_agent(agent_id, AgentEvent.END, now)
    await pool.move_agent(agent_id, AgentEvent.WRAPPED, now)


async def measure(pool: Pool, agents: list[Agent], seconds: float, limit: int,
                  dispatch: Callable[[str], Awaitable[Task | None]],
                  clock: SystemClock) -> dict[str, Any]:
    latencies: list[float] = []
    misses = 0
    started = time.perf_counter()
    i = 0
    while len(latencies) < limit and time.perf_counter() - started < seconds:
        agent_id = agents[i % len(agents)].id
        i += 1
        t0 = time.perf_counter()
        task = await dispatch(agent_id)
        elapsed = time.perf_counter() - t0
        if task is None:
            misses += 1
            continue
        latencies.append(elapsed)
        await recycle(pool, agent_id, task, clock.now())
    return summary(latencies, misses)


def summary(latencies: list[float], misses: int) -> dict[str, Any]:
    ordered = sorted(latencies)
    total = sum(ordered)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else 0.0

    return {"claims": len(ordered), "no_task": misses,
            "claims_per_s": len(ordered) / total if total else 0.0,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": statistics.fmean(ordered) * 1000 if ordered else 0.0}


async def batched(pool: Pool, agents: list[Agent], size: int, seconds: float, limit: int,
                  clock: SystemClock) -> dict[str, Any]:
    """``claim_next`` for ``size`` ready agents per round trip: claims per second of claim
    time, and the round trip's p50/p99 (what each agent of the batch waits)."""
    rounds: list[float] = []
    claims = misses = 0
    started = time.perf_counter()
    i = 0
    while claims < limit and time.perf_counter() - started < seconds:
        ids = [agents[(i + k) % len(agents)].id for k in range(size)]
        i += size
        t0 = time.perf_counter()
        made = await pool.claim_next(ids, clock.now())
        rounds.append(time.perf_counter() - t0)
        claims += len(made.claimed)
        misses += size - len(made.claimed)
        for c in made.claimed:
            await recycle(pool, c.agent.id, c.task, clock.now())
    figures = summary(rounds, misses)
    total = sum(rounds)
    return {**figures, "batch": size, "rounds": figures.pop("claims"), "claims": claims,
            "claims_per_s": claims / total if total else 0.0}


async def all_ask(pool: Pool, agents: list[Agent], dispatcher: Dispatcher, seconds: float,
                  clock: SystemClock) -> dict[str, Any]:
    """Every agent asks the dispatcher at once (``dispatch_agent``, as after a sweep or a
    shift's start): claims per second from the asks to the last answer, and what each agent
    waited (p50/p99). The dispatcher's own batching serves them: ``batch`` agents per round
    trip, ``in_flight`` round trips at once. Then all complete (not timed), again."""
    waits: list[float] = []
    claims = rounds = misses = 0
    busy = 0.0
    stop = time.perf_counter() + seconds

    async def timed(agent_id: str) -> Task | None:
        task = await dispatcher.dispatch_agent(agent_id)
        waits.append(time.perf_counter() - t0)
        return task

    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        got = await asyncio.gather(*(timed(a.id) for a in agents))
        busy += time.perf_counter() - t0
        rounds += 1
        await dispatcher.wait_idle()
        made = [(a.id, t) for a, t in zip(agents, got, strict=True) if t is not None]
        claims += len(made)
        misses += len(agents) - len(made)
        for agent_id, task in made:
            await recycle(pool, agent_id, task, clock.now())
    figures = summary(waits, misses)
    return {**figures, "claims": claims, "rounds": rounds, "batch": dispatcher.batch,
            "in_flight": dispatcher.in_flight, "claims_per_s": claims / busy if busy else 0.0}


async def concurrent_throughput(pool: Pool, agents: list[Agent], dispatcher: Dispatcher,
                                workers: int, seconds: float, clock: SystemClock) -> float:
    """Whole cycles per second (claim, then complete and ready again) of ``workers`` loops
    in this one process, sharing its connection pool."""
    claims = 0
    stop = time.perf_counter() + seconds

    async def loop(offset: int) -> None:
        nonlocal claims
        i = offset
        while time.perf_counter() < stop:
            agent_id = agents[i % len(agents)].id
            i += workers
            task = await dispatcher.dispatch_agent(agent_id)
            if task is not None:
                claims += 1
                await recycle(pool, agent_id, task, clock.now())

    started = time.perf_counter()
    await asyncio.gather(*(loop(k) for k in range(workers)))
    return claims / (time.perf_counter() - started)


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    rng = random.Random(args.seed)
    clock = SystemClock()
    pool = Pool(await connect(url), RULES, clock=clock)
    skills = [f"skill{i}" for i in range(args.skills)]
    agents = make_agents(args.agents, skills, rng)
    t0 = time.perf_counter()
    for agent in agents:
        await pool.save_agent(agent)
        await pool.move_agent(agent.id, AgentEvent.LOGIN, clock.now(), reach=f"PJSIP/{agent.id}")
    tasks = make_tasks(args.tasks, skills, args.agents, clock.now(), rng)
    await pool.add_tasks(tasks)
    load_s = time.perf_counter() - t0
    print(f"loaded {args.agents} agents and {args.tasks} tasks over {args.skills} skills "
          f"in {load_s:.1f} s (redis-py {redis.__version__}, hiredis parser: "
          f"{HIREDIS_AVAILABLE})", flush=True)

    async def noop(agent: Agent, task: Task) -> None:
        del agent, task

    dispatcher = Dispatcher(pool, RULES, clock, noop)
    order = agents[:]
    rng.shuffle(order)
    fast = await measure(pool, order, args.seconds, args.claims,
                         dispatcher.dispatch_agent, clock)
    print(f"acdkit   dispatch_agent: {fast['claims_per_s']:8.1f} claims/s (dispatch time only)  "
          f"p50 {fast['p50_ms']:.2f} ms  p99 {fast['p99_ms']:.2f} ms  "
          f"({fast['claims']} claims)", flush=True)
    batches = []
    for size in args.batches:
        got = await batched(pool, order, size, args.seconds / 2, args.claims, clock)
        batches.append(got)
        print(f"acdkit   claim_next x{size:<3}     {got['claims_per_s']:8.1f} claims/s "
              f"(claim time only)  round trip p50 {got['p50_ms']:.2f} ms  "
              f"p99 {got['p99_ms']:.2f} ms  ({got['claims']} claims)", flush=True)
    together = []
    for in_flight in (1, 2):
        asked = Dispatcher(pool, RULES, clock, noop, in_flight=in_flight)  # serve's batch
        got = await all_ask(pool, order, asked, args.seconds / 2, clock)
        together.append(got)
        print(f"acdkit   {len(order)} agents ask at once, dispatcher x{got['batch']}, "
              f"{in_flight} in flight: {got['claims_per_s']:8.1f} claims/s  "
              f"each waits p50 {got['p50_ms']:.1f} ms  p99 {got['p99_ms']:.1f} ms  "
              f"({got['claims']} claims)", flush=True)
    parallel = await concurrent_throughput(pool, order, dispatcher, args.workers,
                                           args.seconds / 2, clock)
    print(f"acdkit   {args.workers} concurrent loops, one process: {parallel:8.1f} "
          "full cycles/s (claim + complete + ready, wall clock)", flush=True)
    naive = await measure(pool, order, args.seconds * 3, args.naive_claims,
                          lambda a: naive_dispatch(pool, a, skills, clock), clock)
    print(f"naive    scan all queued:  {naive['claims_per_s']:8.3f} claims/s (dispatch time only)  "
          f"p50 {naive['p50_ms']:.0f} ms  p99 {naive['p99_ms']:.0f} ms  "
          f"({naive['claims']} claims)", flush=True)
    ratio = fast["claims_per_s"] / naive["claims_per_s"] if naive["claims_per_s"] else 0.0
    print(f"ratio    acdkit / naive: {ratio:,.0f}x claims per second", flush=True)
    await dispatcher.wait_idle()
    await pool.close()
    held = []
    for count in args.held:
        got = await held_heads(url, count, args.seed)
        held.append(got)
        print(f"acdkit   claim_next x8, {count:3} held per skill at the head: "
              f"Redis {got['redis_us_per_claim']:5.0f} µs, wall {got['wall_us_per_claim']:5.0f} µs "
              f"per claim ({got['claims']} claims)", flush=True)
    return {"held_heads": held, "tasks": args.tasks, "skills": args.skills, "agents": args.agents,
            "load_seconds": load_s, "acdkit": fast, "acdkit_batches": batches,
            "acdkit_all_ask": together,
            "acdkit_cycles": {"workers": args.workers, "processes": 1,
                              "cycles_per_s": parallel},
            "naive": naive, "ratio_claims_per_s": ratio,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "redis": redis_version(url), "redis_py": redis.__version__,
                        "hiredis_parser": HIREDIS_AVAILABLE}}


async def held_heads(url: str, held: int, seed: int) -> dict[str, Any]:
    """Redis time (``INFO commandstats``) and wall time per claim of ``claim_next`` for 8
    agents per round trip, every agent claiming three times, on a fresh pool of 20,000 tasks
    whose ``held`` oldest per skill wait an hour for an agent who is not logged in."""
    rng = random.Random(seed)
    clock = SystemClock()
    now = clock.now()
    sync = redis.Redis.from_url(url, decode_responses=True)
    sync.flushall()
    pool = Pool(await connect(url), RULES, clock=clock)
    skills = [f"skill{i}" for i in range(20)]
    agents = make_agents(1_000, skills, rng)
    for agent in agents:
        await pool.save_agent(agent)
        await pool.move_agent(agent.id, AgentEvent.LOGIN, now, reach=f"PJSIP/{agent.id}")
    tasks = [Task(id=f"h-{s}-{i}", kind=TaskKind.CALLBACK, skill=s, created_at=now,
                  enqueued_at=now - 7200 - i, preferred_agent="away", preferred_until=now + 3600)
             for s in skills for i in range(held)]
    tasks += [Task(id=f"t{i}", kind=TaskKind.CALLBACK, skill=rng.choice(skills), created_at=now,
                   enqueued_at=now - rng.uniform(0, 3600)) for i in range(20_000)]
    await pool.add_tasks(tasks)
    rng.shuffle(agents)
    usec = claims = 0
    wall = 0.0
    for _ in range(3):
        sync.config_resetstat()
        made: list[Any] = []
        for start in range(0, len(agents), 8):
            t0 = time.perf_counter()
            got = await pool.claim_next([a.id for a in agents[start:start + 8]], clock.now())
            wall += time.perf_counter() - t0
            made += got.claimed
        usec += int(sync.info("commandstats")["cmdstat_evalsha"]["usec"])
        claims += len(made)
        for c in made:
            await recycle(pool, c.agent.id, c.task, clock.now())
    await pool.close()
    sync.close()
    return {"held_per_skill": held, "claims": claims,
            "redis_us_per_claim": usec / claims if claims else 0.0,
            "wall_us_per_claim": wall / claims * 1e6 if claims else 0.0}


def redis_version(url: str) -> str:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--claims", type=int, default=20_000, help="acdkit claims at most")
    parser.add_argument("--naive-claims", type=int, default=5, help="naive claims at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per acdkit run")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 32, 64],
                        help="agents per claim_next round trip")
    parser.add_argument("--held", type=int, nargs="*", default=[0, 100],
                        help="tasks per skill held for an absent agent at the head (last part)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    proc, url, workdir = start_redis()
    try:
        result = run(bench(args, url))  # serve's event loop (uvloop)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
