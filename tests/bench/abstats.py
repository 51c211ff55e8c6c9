"""The figures of ``ab_calls.py``: serve's CPU per call of each step, and that divided by
Asterisk's in the same step (docs/benchmarks.md, "Two log lines a call"), summed up per side
and call rate."""

from __future__ import annotations

import statistics
from typing import Any

SIDES = ("base", "new")


def steps(result: dict[str, Any], run: int) -> list[dict[str, Any]]:
    """The figures of one bench_calls.py run, a row per step."""
    rows = []
    for step in result["capacity"]["acdkit"]["steps"]:
        cpu = {name: step["cpu"][name]["cpu_s"] / step["calls"] * 1000
               for name in ("serve", "asterisk", "redis")}
        rows.append({"run": run, "rate": step["rate"], "calls": step["calls"],
                     "failed": step["failed"], "steal": result.get("steal"),
                     "cpu_ms_per_call": {k: round(v, 2) for k, v in cpu.items()},
                     "serve_over_asterisk": round(cpu["serve"] / cpu["asterisk"], 3),
                     "serve_per_call": {k: round(step["serve_per_call"][k], 2)
                                        for k in ("redis_round_trips", "ari_requests",
                                                  "ari_events")}})
    return rows


def summary(rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per rate: each side's mean serve ms per call and serve/Asterisk quotient, and the
    change from base to new in percent."""
    out = []
    for rate in sorted({r["rate"] for r in rows["base"]}):
        line: dict[str, Any] = {"rate": rate}
        for side in SIDES:
            mine = [r for r in rows[side] if r["rate"] == rate]
            line[side] = {
                "serve_ms": round(statistics.mean(r["cpu_ms_per_call"]["serve"] for r in mine), 2),
                "serve_over_asterisk": round(statistics.mean(r["serve_over_asterisk"]
                                                             for r in mine), 3),
                "redis_round_trips": round(statistics.mean(
                    r["serve_per_call"]["redis_round_trips"] for r in mine), 2),
                "runs": len(mine)}
        for figure in ("serve_ms", "serve_over_asterisk"):
            before, after = line["base"][figure], line["new"][figure]
            line[f"change_{figure}_pct"] = round(100 * (after - before) / before, 1)
        out.append(line)
    return out
