"""KPI read benchmark: a busy day of audit events (100,000 by default) read from a real
redis-server and turned into the figures of ``acdkit stats --since today``.

The events have the shape the Lua scripts write to the KPI stream (docs/kpis.md): per
call, the task's add, reserve, connect and complete, and the agent's reserve, answer, end
and wrapped; one call in ten abandons. Times the read (XRANGE in chunks + parse), the one
pass (``collect``) and the figures of the center and of each skill, in wall-clock time and
in this process's CPU time (on a shared machine the wall clock also counts the time other
processes held the CPU). Target: under 1 s for 100,000 events.
Starts its own redis-server.

    python tests/bench/bench_kpis.py --out bench-kpis.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import shutil
import time
from typing import Any

from bench_dispatch import start_redis  # type: ignore[import-not-found]

from acdkit.core.agents import Agent, AgentState
from acdkit.core.kpi_journal import collect
from acdkit.core.kpis import KpiSettings, figures
from acdkit.core.routing import PriorityRules
from acdkit.core.windows import Window
from acdkit.store.connection import connect
from acdkit.store.kpis import read_events
from acdkit.store.pool import Pool

SKILLS = ["sales", "support", "billing", "tech"]


def call_events(n: int, t0: float, rng: random.Random) -> list[tuple[float, dict[str, str]]]:
    """The audit entries of call ``n`` entering at ``t0``."""
    tid, skill, agent = f"t{n}", rng.choice(SKILLS), f"agent{rng.randint(1, 50)}"
    facts = {"kind": "task", "entity": tid, "skill": skill, "tkind": "call",
             "enq": f"{t0:.3f}", "created": f"{t0:.3f}"}
    wait = rng.expovariate(1 / 20)
    out = [(t0, {"event": "add", "from": "", "to": "queued", "pos": "1", "chan": f"ch{n}",
                 "number": "+12125550100", **facts})]
    if rng.random() < 0.1:
        return [*out, (t0 + wait, {"event": "abandon", "from": "queued", "to": "abandoned",
                                   **facts})]
    ring, talk, t1 = 3.0, rng.uniform(30, 300), t0 + wait
    agent_f = {"kind": "agent", "entity": agent, "task": tid, "since": f"{t1 - 60:.3f}"}
    return [*out,
            (t1, {"event": "reserve", "from": "queued", "to": "reserved", "agent": agent,
                  **facts}),
            (t1, {"event": "reserve", "from": "ready", "to": "reserved", **agent_f}),
            (t1 + ring, {"event": "answer", "from": "reserved", "to": "on_call", **agent_f}),
            (t1 + ring, {"event": "connect", "from": "reserved", "to": "active",
                         "agent": agent, **facts}),
            (t1 + ring + talk, {"event": "complete", "from": "active", "to": "completed",
                                "agent": agent, "outcome": "customer hung up", **facts}),
            (t1 + ring + talk, {"event": "end", "from": "on_call", "to": "wrap_up",
                                **agent_f}),
            (t1 + ring + talk + 5, {"event": "wrapped", "from": "wrap_up", "to": "ready",
                                    **agent_f})]


async def fill(pool: Pool, count: int, start: float, end: float) -> int:
    rng = random.Random(7)
    entries: list[tuple[float, dict[str, str]]] = []
    n = 0
    while len(entries) < count:
        entries += call_events(n, rng.uniform(start, end - 600), rng)
        n += 1
    entries = sorted(entries[:count], key=lambda e: e[0])
    pipe = pool.redis.pipeline(transaction=False)
    for seq, (ts, fields) in enumerate(entries):
        pipe.xadd(pool.keys.kpi, {"e": json.dumps({"ts": f"{ts:.3f}", **fields})},
                  id=f"{int(ts * 1000)}-{seq}")
        if seq % 5_000 == 4_999:
            await pipe.execute()
    await pipe.execute()
    return len(entries)


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    pool = Pool(await connect(url), PriorityRules())
    end = time.time()
    start = end - 16 * 3600
    written = await fill(pool, args.events, start, end)
    agents = [Agent(f"agent{i}", skills={s: 1 for s in SKILLS}, state=AgentState.READY,
                    state_since=start) for i in range(1, 51)]
    runs: list[dict[str, float]] = []
    for _ in range(args.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        events, _ = await read_events(pool, start - 3600, end)
        t1 = time.perf_counter()
        journal = collect(events, Window(start, end), agents)
        t2 = time.perf_counter()
        center = figures(journal, KpiSettings())
        for skill in SKILLS:
            figures(journal, KpiSettings(), skill=skill)
        t3 = time.perf_counter()
        runs.append({"read_s": t1 - t0, "collect_s": t2 - t1, "figures_s": t3 - t2,
                     "total_s": t3 - t0, "cpu_s": time.process_time() - c0})
    await pool.close()
    best = min(runs, key=lambda r: r["total_s"])
    return {"events": written, "events_read": len(events), "offered": center.calls.offered,
            "runs": runs, "best": best, "python": platform.python_version(),
            "target_s": 1.0, "ok": best["total_s"] < 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args()
    proc, url, workdir = start_redis()
    try:
        result = asyncio.run(bench(args, url))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    best = result["best"]
    print(f"{result['events_read']:,} events: read {best['read_s']:.3f} s, one pass "
          f"{best['collect_s']:.3f} s, figures (center + {len(SKILLS)} skills) "
          f"{best['figures_s']:.3f} s, total {best['total_s']:.3f} s "
          f"(CPU {best['cpu_s']:.3f} s) "
          f"({'under' if result['ok'] else 'OVER'} the 1 s target)")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
