"""`make bench-ab` sums up bench_calls.py runs of two revisions: serve's CPU per call, and that
divided by Asterisk's in the same step, which a machine running slower for a while leaves
unchanged. On hand-made bench results."""

from __future__ import annotations

from typing import Any

import pytest
from tests.bench.abstats import steps, summary


def run(*per_rate: tuple[float, float, float]) -> dict[str, Any]:
    """A bench_calls.py result: per step (rate, serve ms a call, Asterisk ms a call), 100 calls."""
    return {"steal": 0.0, "capacity": {"acdkit": {"steps": [
        {"rate": rate, "calls": 100, "failed": 0,
         "cpu": {"serve": {"cpu_s": serve / 10}, "asterisk": {"cpu_s": asterisk / 10},
                 "redis": {"cpu_s": 0.1}},
         "serve_per_call": {"redis_round_trips": 10.0, "ari_requests": 8.0, "ari_events": 8.0,
                            "ari_by_route": {}}}
        for rate, serve, asterisk in per_rate]}}}


def test_a_step_is_divided_by_asterisks_cpu_in_that_same_step() -> None:
    [row] = steps(run((60.0, 6.0, 10.0)), 1)
    assert row["cpu_ms_per_call"] == {"serve": 6.0, "asterisk": 10.0, "redis": 1.0}
    assert row["serve_over_asterisk"] == 0.6
    assert row["serve_per_call"] == {"redis_round_trips": 10.0, "ari_requests": 8.0,
                                     "ari_events": 8.0}


def test_a_slower_machine_moves_the_milliseconds_but_not_the_quotient() -> None:
    """The base ran once on a fast machine and once on a slow one (everything 1.5 times
    dearer); the new code costs serve 10% less on each. The milliseconds mix the machine into
    the change, the quotient shows the change alone."""
    base = steps(run((60.0, 6.0, 10.0)), 1) + steps(run((60.0, 9.0, 15.0)), 2)
    new = steps(run((60.0, 5.4 * 1.5, 15.0)), 1) + steps(run((60.0, 5.4, 10.0)), 2)
    [line] = summary({"base": base, "new": new})
    assert [r["serve_over_asterisk"] for r in base] == [0.6, 0.6]
    assert [r["serve_over_asterisk"] for r in new] == [0.54, 0.54]
    assert (line["base"]["serve_over_asterisk"], line["new"]["serve_over_asterisk"]) == (0.6, 0.54)
    assert line["change_serve_over_asterisk_pct"] == -10.0
    assert line["base"]["serve_ms"] == 7.5 and line["new"]["serve_ms"] == pytest.approx(6.75)
    assert line["base"]["runs"] == line["new"]["runs"] == 2


def test_each_call_rate_is_summed_up_apart() -> None:
    base = steps(run((60.0, 6.0, 10.0), (80.0, 5.0, 10.0)), 1)
    new = steps(run((60.0, 6.6, 10.0), (80.0, 4.0, 10.0)), 1)
    lines = summary({"base": base, "new": new})
    assert [(line["rate"], line["change_serve_ms_pct"]) for line in lines] == [
        (60.0, 10.0), (80.0, -20.0)]
