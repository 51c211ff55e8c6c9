"""Callers on hold cost nothing while nothing happens: N SIPp callers held in the holding
bridge with music, no agent ready (every agent paused), then `acdkit serve`'s CPU over
``--seconds`` (30 by default, from /proc/<pid>/stat) and its RSS, its Redis round trips and
ARI requests per second in that window (its /metrics counters), and Asterisk's CPU and RSS
beside it. Before the callers come, the same window of serve alone gives its idle cost.

The bench settings (tests/bench/benchlab.py) announce the position every hour and make no
overflow offer, so nothing is due while the callers wait: ``--announce-every 30`` measures
the cost of the announcements instead. Prints a few lines, never pass/fail; ``--out
FILE.json`` writes the figures.

    flock /tmp/acdkit-lab.lock python tests/bench/bench_hold.py --out var/results/bench-hold.json
    python tests/bench/bench_hold.py --lab private --callers 50   # a free private lab

``--lab main`` (the default) uses the main lab, whose lock the caller holds (``flock``, as
``make bench`` does); ``--lab private`` locks and enters the first free private lab
(scripts/lab-ns.sh), ``--lab NAME`` that one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import benchlab as lab
from tests.lab.conftest import ari_get, hang_up_all, lab_channels, lab_is_up
from tests.lab.labs import claim_private_lab

from acdkit.labkit.sipp import CALLER_IP, SCENARIOS, SippProcess

HOLD_BRIDGE = "hold-sales"  # ari/bridges.py: the holding bridge of the bench IVR's skill


def held_now() -> int:
    status, body = ari_get(f"bridges/{HOLD_BRIDGE}")
    return len(body.get("channels", [])) if status == 200 and isinstance(body, dict) else 0


def window(serve: lab.Serve, pids: dict[str, int], seconds: float) -> dict[str, Any]:
    """CPU of ``pids`` over ``seconds``, RSS at its end, serve's counters per second."""
    before = lab.Counters.read(serve)
    cpu = lab.CpuWindow(pids).start()
    time.sleep(seconds)
    used = cpu.stop()
    after = lab.Counters.read(serve)
    return {"cpu": used, "redis_round_trips_per_s": round((after.redis - before.redis)
                                                          / seconds, 2),
            "ari_requests_per_s": round((sum(after.ari.values()) - sum(before.ari.values()))
                                        / seconds, 2)}


async def pause_agents(serve: lab.Serve, agents: int) -> None:
    pool = await lab.open_pool(lab.settings_of(serve))
    try:
        await lab.add_agents(pool, agents, time.time(), ready=False)
    finally:
        await pool.close()


def hold(serve: lab.Serve, args: argparse.Namespace, work: Path,
         pids: dict[str, int]) -> dict[str, Any]:
    n, ramp = args.callers, args.callers / args.rate
    callers = SippProcess(SCENARIOS / "bench_caller.xml", CALLER_IP, service="100", calls=n,
                          rate=args.rate, limit=n + 10, timeout=ramp + args.seconds + 180,
                          keys={"caller_id": "8"}, variables={"hold_ms": "0"},
                          workdir=work / "callers", name="bench-hold").start()
    try:
        deadline, holding = time.monotonic() + ramp + 60, 0
        while time.monotonic() < deadline and (holding := held_now()) < n:
            time.sleep(0.5)
        print(f"{holding} of {n} callers held after {ramp:.0f} s of ramp", flush=True)
        time.sleep(args.settle)
        busy = window(serve, pids, args.seconds)
        return {**busy, "held": min(holding, held_now())}
    finally:
        hang_up_all(wait=60)
        callers.wait(60)
        deadline = time.monotonic() + 30
        while lab_channels() and time.monotonic() < deadline:
            time.sleep(0.5)


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": lab.machine(), "callers": args.callers,
                              "seconds": args.seconds, "announce_every": args.announce_every,
                              "agents_paused": args.agents}
    redis = lab.RedisServer().start()
    serve = lab.new_serve(redis.url, work, {
        "ACDKIT_QUEUE_ANNOUNCE_EVERY": f"{args.announce_every:g}"})
    try:
        asyncio.run(pause_agents(serve, args.agents))
        serve.start()
        ast = lab.asterisk_pid()
        assert serve.proc is not None and ast is not None, "serve or Asterisk not found"
        pids = {"serve": serve.proc.pid, "asterisk": ast}
        result["idle"] = window(serve, pids, args.idle_seconds)
        result["held"] = hold(serve, args, work, pids)
    finally:
        serve.stop()
        hang_up_all()
        redis.stop()
    return result


def report(r: dict[str, Any]) -> str:
    idle, held = r["idle"], r["held"]
    s, a = held["cpu"]["serve"], held["cpu"]["asterisk"]
    return "\n".join([
        f"{held['held']} of {r['callers']} callers held, nothing due (announce every "
        f"{r['announce_every']:g} s, no offers), {r['seconds']:g} s measured:",
        f"  serve:    {s['cpu_cores']:.3f} cores at rest (target < 0.05), RSS {s['rss_mb']:.0f} MB"
        f" (idle, no caller: {idle['cpu']['serve']['cpu_cores']:.3f} cores, "
        f"{idle['cpu']['serve']['rss_mb']:.0f} MB)",
        f"            {held['redis_round_trips_per_s']:.1f} Redis round trips/s, "
        f"{held['ari_requests_per_s']:.1f} ARI requests/s (idle: "
        f"{idle['redis_round_trips_per_s']:.1f}, {idle['ari_requests_per_s']:.1f})",
        f"  Asterisk: {a['cpu_cores']:.3f} cores, RSS {a['rss_mb']:.0f} MB"])


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--callers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=25.0, help="callers per second in the ramp")
    p.add_argument("--seconds", type=float, default=30.0, help="the window measured at rest")
    p.add_argument("--idle-seconds", type=float, default=10.0,
                   help="the window of serve alone, before the callers")
    p.add_argument("--settle", type=float, default=3.0, help="s between the last held and "
                   "the window")
    p.add_argument("--agents", type=int, default=10, help="agents logged in and paused")
    p.add_argument("--announce-every", type=float, default=3600.0)
    p.add_argument("--lab", default="main",
                   help="main (its lock held by the caller), private, or a private lab's name")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    return p.parse_args()


def take_lab(choice: str) -> IO[str] | None:
    """The private lab's lock (held until exit), after entering it; None for the main lab."""
    if choice == "main":
        return None
    return claim_private_lab("" if choice == "private" else choice)


def main() -> int:
    args = options()
    lock = take_lab(args.lab)
    if not lab_is_up():
        sys.exit("the lab is not up: make lab-up (or scripts/lab-ns.sh up NAME)")
    work = Path(tempfile.mkdtemp(prefix="acdkit-bench-hold-"))
    result = run(args, work)
    print(report(result))
    print(f"(logs in {work})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    if lock is not None:
        lock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
