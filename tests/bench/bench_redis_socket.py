"""What a Redis round trip costs serve's side: over TCP on loopback and over a unix socket.

Starts its own redis-server (no persistence, in a temporary directory) listening on both, and
runs the same commands through acdkit's own asyncio client (store/primary.py
``async_client``, hiredis, on uvloop as serve runs): ``HGET`` of one field, ``HGETALL``
of a task-sized hash (20 fields), and a Lua script of 2 keys and 6 arguments called through
acdkit's ``Script`` (store/scripts.py) and through redis-py's own ``AsyncScript``, one at a
time and from ``--concurrency`` tasks at once (as concurrent calls do). Reports the client's
CPU (process time) and the wall time per command, each the median of ``--rounds`` alternated
runs per transport. Prints JSON; ``--out FILE.json`` writes it too.

    python tests/bench/bench_redis_socket.py --out var/results/bench-redis-socket.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests.* from the checkout
from redis.commands.core import AsyncScript
from tests.bench.bench_wait import free_port, median_of, redis_version, start

from acdkit.cli.common import run
from acdkit.store.primary import async_client
from acdkit.store.scripts import Script

TASK = {f"field{i}": f"value-{i:04d}-" + "x" * 12 for i in range(20)}
LUA = "return ARGV[1]"
KEYS, ARGS = ["task", "agent"], ["a", "b", "c", "d", "e", "f"]


async def measure(url: str, n: int, concurrency: int) -> dict[str, Any]:
    """µs per command (client CPU, wall) for each kind of work, on one client."""
    client = async_client(url, timeout=5.0)
    try:
        await client.hset("task", mapping=TASK)
        for _ in range(500):  # connections made, caches warm
            await client.hget("task", "field3")

        scripts = {"script": Script(client, LUA), "script_redis_py": AsyncScript(client, LUA)}
        await scripts["script"](KEYS, ARGS)

        def call(command: str) -> Awaitable[Any]:
            if command in scripts:
                return scripts[command](keys=KEYS, args=ARGS)
            return client.hget("task", "field3") if command == "hget" else client.hgetall("task")

        async def one_at_a_time(command: str) -> tuple[float, float]:
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(n):
                await call(command)
            return _per(cpu, wall, n)

        async def together(command: str) -> tuple[float, float]:
            each = n // concurrency

            async def worker() -> None:
                for _ in range(each):
                    await call(command)

            cpu, wall = time.process_time(), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return _per(cpu, wall, each * concurrency)

        figures: dict[str, Any] = {}
        for command in ("hget", "hgetall", *scripts):
            for mode, work in (("one_at_a_time", one_at_a_time), ("concurrent", together)):
                cpu_us, wall_us = await work(command)
                figures[f"{command}_{mode}"] = {"client_cpu_us": cpu_us, "wall_us": wall_us}
        return figures
    finally:
        await client.aclose()


def _per(cpu: float, wall: float, n: int) -> tuple[float, float]:
    return (round((time.process_time() - cpu) / n * 1e6, 1),
            round((time.perf_counter() - wall) / n * 1e6, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="commands per figure and run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5, help="runs per transport, alternated")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="acdkit-bench-socket-") as tmp:
        unix = Path(tmp) / "redis.sock"
        port = free_port()
        proc = start(Path(tmp), port, "--unixsocket", str(unix), "--unixsocketperm", "700")
        urls = {"tcp_loopback": f"redis://127.0.0.1:{port}/0", "unix_socket": f"unix://{unix}"}
        try:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
            for _ in range(args.rounds):  # alternated, so background load hits both alike
                for name, url in urls.items():
                    runs[name].append(run(measure(url, args.n, args.concurrency)))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    tcp, unix_figures = median_of(runs["tcp_loopback"]), median_of(runs["unix_socket"])
    report = {"what": "client CPU and wall time per Redis command, acdkit's asyncio client "
                      "on uvloop, TCP on loopback against a unix socket",
              "date": time.strftime("%Y-%m-%d"),
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "processor": _processor(), "redis_server": redis_version()},
              "n": args.n, "concurrency": args.concurrency, "rounds": args.rounds,
              "figures": "median of the rounds",
              "tcp_loopback": tcp, "unix_socket": unix_figures,
              "unix_saves_client_cpu_percent": {
                  work: round(100 * (1 - unix_figures[work]["client_cpu_us"]
                                     / tcp[work]["client_cpu_us"]), 1) for work in tcp}}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
