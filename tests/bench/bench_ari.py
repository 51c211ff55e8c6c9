"""ARI request round trip: GET asterisk/info over the events WebSocket and over HTTP.

    python tests/bench/bench_ari.py [-n 2000] [--out FILE.json]

Also the client's CPU per request (this process's CPU time over the N requests, on serve's
event loop: cli/common.py ``run``), one at a time and ``CONCURRENT`` at once: what a call's
ARI requests cost serve, without Asterisk's noise.

Runs against the lab (credentials as in tests/lab/test_ari_lab.py: asterisk/acdkit.toml or
asterisk/etc/ari.conf, or --url/--user/--password). Each transport gets its own client and
app name (never ``acdkit``, so a running ``serve`` keeps its app), a short warm-up, then N
sequential requests; prints p50/p99/mean/max in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from acdkit.ari import events as ev  # noqa: E402
from acdkit.ari.client import AriClient  # noqa: E402
from acdkit.cli.common import run  # noqa: E402
from acdkit.config import load_settings  # noqa: E402

WARMUP = 50
CONCURRENT = 16


def lab_credentials() -> tuple[str, str, str]:
    """(url, username, password) of the lab's ARI, from asterisk/acdkit.toml."""
    ari = load_settings(ROOT / "asterisk" / "acdkit.toml", env={}).ari
    return ari.url, ari.username, ari.password.reveal()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url: str, user: str, password: str, transport: str, n: int) -> dict[str, Any]:
    client = AriClient(url, user, password, f"acdkit-bench-{os.getpid()}-{transport}",
                       transport=transport)

    async def ignore(_: ev.Event) -> None:
        return None

    runner = asyncio.create_task(client.run(ignore))
    try:
        await client.wait_connected(5.0)
        for _ in range(WARMUP):
            await client.request("GET", "asterisk/info")
        samples = []
        cpu = time.process_time()
        for _ in range(n):
            started = time.perf_counter()
            await client.request("GET", "asterisk/info")
            samples.append((time.perf_counter() - started) * 1000)
        cpu_one = (time.process_time() - cpu) / n

        async def some(count: int) -> None:
            for _ in range(count):
                await client.request("GET", "asterisk/info")

        cpu = time.process_time()
        await asyncio.gather(*(some(n // CONCURRENT) for _ in range(CONCURRENT)))
        cpu_many = (time.process_time() - cpu) / (n // CONCURRENT * CONCURRENT)
        used = client.transport
    finally:
        await client.close()
        await runner
    return {"transport": used, "n": n, "p50_ms": percentile(samples, 0.50),
            "p99_ms": percentile(samples, 0.99), "mean_ms": statistics.fmean(samples),
            "max_ms": max(samples), "cpu_us_per_request": round(cpu_one * 1e6, 1),
            f"cpu_us_per_request_{CONCURRENT}_at_once": round(cpu_many * 1e6, 1)}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per transport")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--url"), parser.add_argument("--user"), parser.add_argument("--password")
    args = parser.parse_args()
    url, user, password = lab_credentials()
    url, user, password = args.url or url, args.user or user, args.password or password
    results = [await measure(url, user, password, t, args.n) for t in ("auto", "http")]
    print(f"ARI GET asterisk/info round trip, N={args.n} sequential ({url})")
    for r in results:
        print(f"  {r['transport']:<9}  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  "
              f"mean {r['mean_ms']:.3f} ms  max {r['max_ms']:.3f} ms; client CPU per request "
              f"{r['cpu_us_per_request']:.0f} us, "
              f"{r[f'cpu_us_per_request_{CONCURRENT}_at_once']:.0f} us {CONCURRENT} at once")
    if results[0]["transport"] != "websocket":
        print("  note: this Asterisk has no REST over WebSocket; both runs used HTTP")
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "ari_request_round_trip",
                                        "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run(main()))
