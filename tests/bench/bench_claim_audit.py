"""What the audit costs a claim: Redis's time per claim of ``claim_next`` (8 agents per round
trip, 20,000 queued tasks: bench_dispatch.py ``held_heads``), with the scripts as shipped and
with their audit left out (``audit`` in store/lua/_lib.lua returns at once: no KPI stream
entry, no entity story, no page change published), in turn, ``--rounds`` times each. The
second form is no option for acdkit: its KPIs, queue_log feed, stories and live pages are made
from the audit (docs/kpis.md). It shows how much of a claim's Redis time the routing and the
state changes take by themselves, which bounds the claims per second on one Redis.

    python tests/bench/bench_claim_audit.py --out var/results/bench-claim-audit.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_dispatch as bd

import acdkit.store.scripts as scripts
from acdkit.cli.common import run

AUDIT = "local function audit(kind, entity, event, fields)\n"
SHIPPED = scripts.source


def without_audit(name: str) -> str:
    text = SHIPPED(name)
    assert AUDIT in text, "store/lua/_lib.lua no longer defines audit() as expected"
    return text.replace(AUDIT, AUDIT + "  do return end\n", 1)


FORMS: dict[str, Callable[[str], str]] = {"as shipped": SHIPPED, "no audit": without_audit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    proc, url, workdir = bd.start_redis()
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "redis": bd.redis_version(url), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                     time.gmtime())}
    runs: dict[str, list[dict[str, Any]]] = {form: [] for form in FORMS}
    try:
        for _ in range(args.rounds):
            for form, source in FORMS.items():
                scripts.source = source  # each held_heads() run registers the scripts anew
                got = run(bd.held_heads(url, 0, args.seed))
                runs[form].append(got)
                print(f"  {form:<10}  Redis {got['redis_us_per_claim']:6.1f} µs, wall "
                      f"{got['wall_us_per_claim']:6.1f} µs per claim", flush=True)
    finally:
        scripts.source = SHIPPED
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {form: statistics.median(r["redis_us_per_claim"] for r in got)
               for form, got in runs.items()}
    share = 1 - medians["no audit"] / medians["as shipped"]
    print(f"Redis µs per claim, medians of {args.rounds}: as shipped {medians['as shipped']:.1f}, "
          f"no audit {medians['no audit']:.1f} (the audit: {share:.0%})")
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "medians_redis_us_per_claim": medians,
                                        "audit_share": share, "machine": machine},
                                       indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
