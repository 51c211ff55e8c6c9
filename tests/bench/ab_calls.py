"""serve's CPU per call, the code of a base revision against the working tree, in turn.

One change to the call path moves serve's CPU per call by a few percent, while this machine's
speed drifts by more than that between runs (docs/benchmarks.md). So both sides run
alternately, ``--runs`` times each, at the same call rates (``bench_calls.py --only capacity
--targets acdkit``), and each step is also divided by Asterisk's CPU per call in that step.
For a change to serve alone, Asterisk does the same work per call on both sides; the quotient
cancels the drift, where the absolute figures keep it.

The base runs from a temporary git worktree of ``--base``; its ``src`` goes first on
``PYTHONPATH`` for bench_calls.py and the serve it starts. The new side is this checkout.
The bench's own code is this checkout's for both. It takes the lab lock for the whole run:

    python tests/bench/ab_calls.py --base HEAD~1 --out var/results/ab-calls.json

Prints the means per side and rate and the change between them. It never says pass or fail.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import benchlab as lab
from abstats import SIDES, steps, summary
from tests.lab.conftest import lab_is_up

ROOT = Path(__file__).resolve().parents[2]
LAB_LOCK = Path(os.environ.get("ACDKIT_LAB_LOCK", "/tmp/acdkit-lab.lock"))


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached checkout of ``rev``, removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="acdkit-ab-")) / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(where), rev], cwd=ROOT,
                   check=True, capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT,
                       check=False, capture_output=True)
        shutil.rmtree(where.parent, ignore_errors=True)


def bench_once(side: str, base_src: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    env = dict(os.environ)
    if side == "base":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(base_src),
                                                          env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(ROOT / "tests/bench/bench_calls.py"), "--only", "capacity",
           "--targets", "acdkit", "--talk", str(args.talk), "--agents", str(args.agents),
           "--start-rate", str(args.start_rate), "--rate-step", str(args.rate_step),
           "--max-rate", str(args.max_rate), "--step-seconds", str(args.step_seconds),
           "--out", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench_calls.py failed for {side}:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(out.read_text()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", required=True, help="the revision to compare with (git rev)")
    p.add_argument("--runs", type=int, default=5, help="runs of each side, in turn")
    p.add_argument("--start-rate", type=float, default=60.0, help="calls/s of the first step")
    p.add_argument("--rate-step", type=float, default=20.0)
    p.add_argument("--max-rate", type=float, default=80.0, help="calls/s of the last step")
    p.add_argument("--step-seconds", type=float, default=10.0)
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--talk", type=float, default=0.2)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    if not lab_is_up():
        sys.exit("the lab is not up: make lab-up")
    rows: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    with LAB_LOCK.open("a") as lock, worktree(args.base) as base, \
            tempfile.TemporaryDirectory(prefix="acdkit-ab-runs-") as tmp:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for run in range(1, args.runs + 1):
            for side in SIDES:
                got = bench_once(side, base / "src", args, Path(tmp) / f"{side}-{run}.json")
                rows[side] += steps(got, run)
                last = rows[side][-1]
                print(f"{side:4} run {run}: serve {last['cpu_ms_per_call']['serve']:.2f} ms "
                      f"a call at {last['rate']:g}/s, serve/Asterisk "
                      f"{last['serve_over_asterisk']:.3f}", flush=True)
    table = summary(rows)
    for line in table:
        print(f"{line['rate']:5g} calls/s: serve ms a call {line['base']['serve_ms']:.2f} -> "
              f"{line['new']['serve_ms']:.2f} ({line['change_serve_ms_pct']:+.1f}%), "
              f"serve/Asterisk {line['base']['serve_over_asterisk']:.3f} -> "
              f"{line['new']['serve_over_asterisk']:.3f} "
              f"({line['change_serve_over_asterisk_pct']:+.1f}%)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(
            {"what": f"serve of {args.base} (base) and of {head} plus the working tree (new), "
                     f"in turn; bench_calls.py --only capacity --targets acdkit, "
                     f"{args.start_rate:g} to {args.max_rate:g} calls/s by {args.rate_step:g}, "
                     f"{args.step_seconds:g} s a step",
             "machine": lab.machine(), "summary": table, **rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
