"""The cost of "acknowledged means durable": claims and bookings with and without ``WAIT``.

Starts its own primary and one replica (redis-server on loopback, no persistence, in a
temporary directory) and runs the same work through acdkit's pool twice: with
``redis.min_replicas_ack`` 0 (no ``WAIT``) and 1 (``WAIT 1`` after every claim and booking,
store/durability.py), and a third time through a Sentinel group (one primary, two replicas,
three sentinels: tests/integration/sentinels.py) with ``WAIT 1`` and the sentinels' check
that the primary is not being replaced. Reports claims per second (one claimer, and
``--concurrency`` claimers at once), claim and booking latency (p50, p99) and what ``WAIT``
adds, each the median of ``--rounds`` alternated runs per mode. Prints JSON; ``--out
FILE.json`` writes it too.

    python tests/bench/bench_wait.py --out var/results/bench-wait.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.* from the checkout
from tests.integration.sentinels import MASTER, SentinelGroup

from acdkit.config import RedisSettings
from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.numbers import NumberPolicy
from acdkit.core.routing import PriorityRules
from acdkit.core.tasks import Task, TaskKind
from acdkit.store.callbacks import CallbackStore
from acdkit.store.connection import connect
from acdkit.store.durability import Acks
from acdkit.store.pool import Pool
from acdkit.store.primary import primary_of
from acdkit.store.scripts import ClaimResult

T0 = 1_800_000_000.0
POLICY = NumberPolicy(max_pending_per_number=1_000_000, max_requests_per_caller=1_000_000,
                      max_attempts_per_number=1_000_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(root: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: run `make deps`")
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--loglevel", "warning", *extra],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    for _ in range(200):
        try:
            client.ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    sys.exit(f"redis-server on {port} did not start")


def wait_replica(port: int) -> None:
    client = redis.Redis(port=port, decode_responses=True)
    for _ in range(200):
        info = client.info("replication")
        if info.get("slave0", {}).get("state") == "online":
            return
        time.sleep(0.05)
    sys.exit("the replica did not come online")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(1000 * statistics.median(ordered), 3),
            "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 3)}


async def setup(pool: Pool, n: int, tag: str) -> list[tuple[str, str]]:
    """``n`` queued tasks and ``n`` ready agents (one skill): the pairs to claim."""
    pairs = []
    for i in range(n):
        task_id, agent_id = f"{tag}-t{i}", f"{tag}-a{i}"
        await pool.add_task(Task(id=task_id, kind=TaskKind.CALL, skill="sales",
                                 created_at=T0, enqueued_at=T0 + i), T0)
        await pool.save_agent(Agent(id=agent_id, skills={"sales": 5}), T0)
        await pool.move_agent(agent_id, AgentEvent.LOGIN, T0, reach=f"PJSIP/{agent_id}")
        pairs.append((agent_id, task_id))
    return pairs


async def timed(ops: list[Callable[[], Awaitable[object]]], concurrency: int) -> tuple[
        float, list[float]]:
    """Run ``ops`` with ``concurrency`` at once; wall time and each op's latency."""
    latencies: list[float] = []
    queue = list(reversed(ops))

    async def worker() -> None:
        while queue:
            op = queue.pop()
            began = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies


def claim(pool: Pool, agent_id: str, task_id: str) -> Callable[[], Awaitable[object]]:
    async def run() -> None:
        if await pool.try_claim(agent_id, task_id, T0) is not ClaimResult.OK:
            raise SystemExit(f"claim {agent_id} {task_id} failed")
    return run


def booking(store: CallbackStore, i: int, tag: str) -> Callable[[], Awaitable[object]]:
    task = Task(id=f"{tag}-cb{i}", kind=TaskKind.CALLBACK, skill="sales", created_at=T0,
                enqueued_at=T0, number=f"+1201555{i % 10_000:04d}")

    def run() -> Awaitable[object]:
        return store.book_callback(task, policy=POLICY, caller_number="+12015550199", now=T0)
    return run


async def measure(url: str, acks: int, n: int, concurrency: int,
                  sentinels: str = "") -> dict[str, Any]:
    redis.Redis.from_url(url).flushall()
    target = primary_of(RedisSettings(url=url, sentinels=sentinels, master_name=MASTER)) \
        if sentinels else url
    pool = Pool(await connect(target), PriorityRules(), acks=Acks(acks, 1_000))
    store = CallbackStore(pool)
    try:
        one = await setup(pool, n, "seq")
        many = await setup(pool, n, "par")
        seq_s, seq = await timed([claim(pool, a, t) for a, t in one], 1)
        par_s, _ = await timed([claim(pool, a, t) for a, t in many], concurrency)
        book_s, books = await timed([booking(store, i, "b") for i in range(n)], 1)
    finally:
        await pool.close()
    return {"min_replicas_ack": acks, "through_sentinels": bool(sentinels),
            "claims_per_s_one_claimer": round(n / seq_s),
            f"claims_per_s_{concurrency}_claimers": round(n / par_s),
            "claim_latency": percentiles(seq),
            "bookings_per_s_one_caller": round(n / book_s),
            "booking_latency": percentiles(books)}


def added(without: dict[str, Any], with_wait: dict[str, Any]) -> dict[str, float]:
    return {f"{what.split('_')[0]}_{p}": round(with_wait[what][p] - without[what][p], 3)
            for what in ("claim_latency", "booking_latency") for p in ("p50_ms", "p99_ms")}


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (a loaded machine makes single runs noisy)."""
    def mid(values: list[Any]) -> Any:
        if isinstance(values[0], dict):
            return {k: mid([v[k] for v in values]) for k in values[0]}
        return statistics.median(values)
    return mid(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000, help="claims and bookings per run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each mode, alternated")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="acdkit-bench-wait-") as tmp:
        primary, replica = free_port(), free_port()
        procs = [start(Path(tmp), primary)]
        try:
            procs.append(start(Path(tmp), replica, "--replicaof", "127.0.0.1", str(primary)))
            wait_replica(primary)
            url = f"redis://127.0.0.1:{primary}/0"
            runs: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
            for _ in range(args.rounds):  # alternated, so background load hits both alike
                for acks in (0, 1):
                    runs[acks].append(asyncio.run(measure(url, acks, args.n,
                                                          args.concurrency)))
            without, with_wait = median_of(runs[0]), median_of(runs[1])
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
        group = SentinelGroup(Path(tmp))
        try:
            group.start()
            url = f"redis://127.0.0.1:{group.primary()}/0"
            sentinel = median_of([asyncio.run(measure(url, 1, args.n, args.concurrency,
                                                      group.sentinel_list))
                                  for _ in range(args.rounds)])
        finally:
            group.close()
    report = {"what": "claims and bookings without and with WAIT 1 (one local replica), and "
                      "with WAIT 1 and the sentinels' check through a Sentinel group",
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "redis_server": redis_version()},
              "n": args.n, "rounds": args.rounds, "figures": "median of the rounds",
              "without_wait": without, "with_wait": with_wait,
              "added_by_wait": added(without, with_wait),
              "with_wait_through_sentinels": sentinel,
              "added_by_wait_and_sentinel_check": added(without, sentinel)}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


def redis_version() -> str:
    out = subprocess.run([shutil.which("redis-server") or "redis-server", "--version"],
                         capture_output=True, text=True, check=False).stdout
    return out.split("v=")[1].split()[0] if "v=" in out else out.strip()


if __name__ == "__main__":
    main()
