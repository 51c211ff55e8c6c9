"""`make chaos`: faults under a steady load on the lab, then the invariants checked.

Load: SIPp callers into the Stasis entry (bench IVR: beep, queue; agents hang up after 2 s),
callbacks booked into the store every ``--book-every`` s (one number each; some numbers
are busy, so retries and failures happen too), an agents' and a customers' SIPp phone,
`acdkit serve` (an active and a standby under the node's lease) and `acdkit worker` on a
Redis Sentinel group whose replicas confirm bookings, claims and dial locks
(tests/bench/chaos_center.py; ``--no-sentinel --no-standby``: one redis-server, one serve).

Faults, spread at random over ``--duration`` s (knobs: --worker-kills, --serve-kills,
--failovers, --redis-restarts, --asterisk-restarts, --asterisk-stops; scale them with the
duration): SIGKILL the worker, SIGKILL the active serve (the standby takes over), fail the
Redis primary over (SENTINEL FAILOVER or a SIGKILL of the primary), restart the lab's
Asterisk, stop it for ``--stop-seconds`` (scripts/lab-restart-asterisk.sh). Callers on the
line while Asterisk is down are cut: they cannot be saved, and the report counts them apart.
Then the load stops and the center drains (``--drain`` s at most), and the checks run
(tests/bench/chaos_checks.py). Any violation: exit 1 with the offending ids.
Loopback only; stops by itself (about duration + drain + 1 min). Run under the lab lock:

    flock /tmp/acdkit-lab.lock python tests/bench/chaos.py --out var/results/chaos.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import benchlab as lab
import chaos_checks as checks
import redis
from chaos_center import Center
from tests.lab.conftest import hang_up_all, lab_channels, lab_is_up

from acdkit.core.errors import RedisUnavailable
from acdkit.labkit.sipp import CALLER_IP, SCENARIOS, SippProcess, agent_peer, customer_peer
from acdkit.services.callbacks import callback_store

BUSY_EVERY = 7  # callback number i is busy when i % BUSY_EVERY == 0


REDIS_DOWN = (RedisUnavailable, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
              OSError)


def number(i: int) -> str:
    return f"+1212555{1000 + i:04d}"


def schedule(args: argparse.Namespace, rng: random.Random) -> list[tuple[float, str]]:
    """Each kind's faults spread over the duration, one per equal slice, at a random point."""
    plan = []
    for kind, count in (("worker", args.worker_kills), ("serve", args.serve_kills),
                        ("redis", 0 if args.sentinel else args.redis_restarts),
                        ("failover", args.failovers if args.sentinel else 0),
                        ("asterisk", args.asterisk_restarts),
                        ("asterisk_stop", args.asterisk_stops)):
        for i in range(count):
            plan.append(((i + rng.uniform(0.1, 0.9)) * args.duration / count, kind))
    return sorted(plan)


class Booker(threading.Thread):
    """Books one callback every ``every`` s; a booking that returned is 'accepted'."""

    def __init__(self, center: Center, every: float) -> None:
        super().__init__(name="booker", daemon=True)
        self.center, self.every = center, every
        self.accepted: dict[str, str] = {}  # task id → number
        self.refused: list[str] = []  # while Redis was down: the caller would retry
        self.rejected: list[dict[str, str]] = []  # for any other reason: a harness defect
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        settings = lab.settings_of(self.center.serve)
        pool, i = None, 0
        while not self.stopping.is_set():
            i += 1
            task_id = f"chaos-{i}"
            try:
                pool = pool or await lab.open_pool(settings)
                await lab.book_callback(pool, settings, number(i), time.time(), task_id)
                self.accepted[task_id] = number(i)
            except Exception as exc:
                if isinstance(exc, REDIS_DOWN):  # not accepted: the caller would retry
                    self.refused.append(f"{task_id}: {type(exc).__name__}")
                else:  # reported as a violation
                    self.rejected.append({"task": task_id,
                                          "problem": f"{type(exc).__name__}: {exc}"})
                if pool is not None:
                    await pool.close()
                pool = None
            await asyncio.to_thread(self.stopping.wait, self.every)
        if pool is not None:
            await pool.close()


async def ended(center: Center, accepted: list[str]) -> bool:
    """Every accepted callback ended."""
    pool = await lab.open_pool(lab.settings_of(center.serve))
    try:
        tasks = [await pool.get_task(t) for t in accepted]
        return all(t is None or t.terminal for t in tasks)
    finally:
        await pool.close()


async def verify(center: Center, booker: Booker, customers: Any, callers: SippProcess,
                 channels: list[dict[str, Any]]) -> dict[str, Any]:
    settings = lab.settings_of(center.serve)
    pool = await lab.open_pool(settings)
    store = callback_store(pool, settings)
    accepted = sorted(booker.accepted)
    by_number = {n.lstrip("+"): t for t, n in booker.accepted.items()}
    left_callers, cut = checks.callers_left_on_line(callers.messages(), center.asterisk_cuts)
    try:
        found = {
            "every booking accepted unless Redis was down": booker.rejected,
            "callbacks end exactly once, none lost": await checks.callbacks_end_once(
                store, accepted),
            "no callback dialed twice at once (attempts)": await checks.attempts_never_overlap(
                store, accepted),
            "no number rung twice at once (customer SIPp)":
                checks.customer_calls_never_overlap(customers.messages(), by_number,
                                                   center.asterisk_cuts),
            "nothing left reserved or active": await checks.nothing_left_reserved(
                store, time.time()),
            "no channel left on Asterisk": checks.channels_left(channels),
            "no caller left on the line (caller SIPp)": left_callers,
        }
        outcomes: dict[str, int] = {}
        for task_id in accepted:
            task = await pool.get_task(task_id)
            state = task.state.value if task else "lost"
            outcomes[state] = outcomes.get(state, 0) + 1
    finally:
        await pool.close()
    return {"checks": found, "callback_outcomes": outcomes, "caller_calls_cut_by_asterisk": cut}


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=360, help="s of load with faults")
    p.add_argument("--drain", type=float, default=180, help="s at most to wait for the end")
    p.add_argument("--worker-kills", type=int, default=30)
    p.add_argument("--serve-kills", type=int, default=10)
    p.add_argument("--redis-restarts", type=int, default=5)
    p.add_argument("--asterisk-restarts", type=int, default=1)
    p.add_argument("--asterisk-stops", type=int, default=2, help="the node down --stop-seconds")
    p.add_argument("--stop-seconds", type=float, default=30.0)
    p.add_argument("--failovers", type=int, default=5, help="Redis primary failovers (--sentinel)")
    p.add_argument("--sentinel", action=argparse.BooleanOptionalAction, default=True,
                   help="Redis as a Sentinel group, writes confirmed by a replica (else one "
                        "redis-server, restarted --redis-restarts times)")
    p.add_argument("--standby", action=argparse.BooleanOptionalAction, default=True,
                   help="an active and a standby serve under the node's lease")
    p.add_argument("--call-rate", type=float, default=0.5, help="new callers per second")
    p.add_argument("--book-every", type=float, default=1.0, help="s between callback bookings")
    p.add_argument("--agents", type=int, default=20)
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--out", type=Path, help="write what was injected and found as JSON")
    return p.parse_args()


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    random.seed(args.seed)
    plan = schedule(args, rng)
    center = Center(work, args)
    asyncio.run(prepare(center, args.agents))
    busy = [number(i).lstrip("+") for i in range(BUSY_EVERY, 5000, BUSY_EVERY)][:400]
    phones = agent_peer(workdir=work / "agents", hangup="*", hangup_after=2.0).start()
    customers = customer_peer(workdir=work / "customers", busy=busy, ring_after=0.3,
                              hangup="*", hangup_after=1.5).start()
    callers = SippProcess(SCENARIOS / "bench_caller.xml", CALLER_IP, service="100",
                          calls=max(1, round(args.call_rate * args.duration)),
                          rate=args.call_rate, limit=100,
                          timeout=args.duration + args.drain + 60, keys={"caller_id": "9"},
                          variables={"hold_ms": "0"}, workdir=work / "callers", name="callers")
    booker = Booker(center, args.book_every)
    try:
        center.start()
        callers.start()
        booker.start()
        started = time.monotonic()
        print(f"chaos: {len(plan)} faults over {args.duration:.0f} s (seed {args.seed}); "
              f"work dir {work}", flush=True)
        for at, kind in plan:
            while time.monotonic() - started < at:
                center.watch()
                time.sleep(0.2)
            center.inject(kind)
        while time.monotonic() - started < args.duration:
            center.watch()
            time.sleep(0.5)
        booker.stopping.set()
        booker.join(30)
        deadline = time.monotonic() + args.drain
        print(f"load stopped; draining ({len(booker.accepted)} callbacks accepted)", flush=True)
        while time.monotonic() < deadline and (lab_channels() or not asyncio.run(
                ended(center, list(booker.accepted)))):
            center.watch()
            time.sleep(2)
        callers.stop()
        result = asyncio.run(verify(center, booker, customers, callers, lab_channels()))
    finally:
        booker.stopping.set()
        hang_up_all()
        for proc in (callers, phones, customers):
            proc.stop()
        center.stop()
    result.update({"seed": args.seed, "machine": lab.machine(), "injected": center.injected,
                   "crashes": center.crashes, "fenced": center.fenced,
                   "takeovers_s": center.takeovers, "sentinel": args.sentinel,
                   "standby": args.standby, "accepted": len(booker.accepted),
                   "refused_while_redis_down": len(booker.refused),
                   "caller_calls": callers.result().successful + callers.result().failed})
    return result


async def prepare(center: Center, agents: int) -> None:
    pool = await lab.open_pool(lab.settings_of(center.serve))
    try:
        await lab.add_agents(pool, agents, time.time())
    finally:
        await pool.close()


def report(result: dict[str, Any]) -> int:
    kinds: dict[str, int] = {}
    for item in result["injected"]:
        kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
    print(f"\ninjected: {kinds}; processes that died by themselves: {result['crashes'] or 'none'}")
    print(f"callbacks accepted {result['accepted']} (bookings refused while Redis was down: "
          f"{result['refused_while_redis_down']}); outcomes {result['callback_outcomes']}; "
          f"caller calls {result['caller_calls']} "
          f"({result['caller_calls_cut_by_asterisk']} cut while Asterisk was down: they cannot be "
          f"saved)")
    if result.get("standby"):
        print(f"standby takeovers after a kill (s): {result['takeovers_s']}; serves that "
              f"stopped themselves for a lease they could not renew: {len(result['fenced'])}")
    bad = 0
    for name, found in result["checks"].items():
        bad += len(found)
        kinds = Counter(str(item["problem"]).split(":")[0] for item in found)
        print(f"  {'ok  ' if not found else 'FAIL'} {name}: {len(found)} violation(s)"
              + (f" {dict(kinds)}" if found else ""))
        for item in found[:12]:
            print(f"         {json.dumps(item)}")
    print(f"chaos: {'no violations' if not bad else f'{bad} violation(s)'}")
    return 1 if bad else 0


def main() -> int:
    args = options()
    if not lab_is_up():
        sys.exit("the lab is not up: make lab-up")
    work = Path(tempfile.mkdtemp(prefix="acdkit-chaos-"))
    result = run(args, work)
    code = report(result)
    print(f"(logs in {work})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
