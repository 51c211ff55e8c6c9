"""Long fuzz runs (``make fuzz``): each target of tests/fuzz/targets.py for N inputs.

    .venv/bin/python tests/fuzz/fuzz_targets.py [--runs 100000] [--engine auto] [TARGET ...]

Engines: ``atheris`` (coverage-guided: libFuzzer mutates the byte stream hypothesis draws
each input from, and keeps what reaches new lines of acdkit) or ``hypothesis`` (random
generation from the same strategies); ``auto`` picks atheris when it is importable
(``pip install -e '.[fuzz]'``). Each target runs in its own process (libFuzzer exits the
process when it stops). A crash is any exception other than the parser's typed error, or a
broken invariant; crashes are counted, not fatal, and the first input of each distinct crash
is printed. Exit status 1 when any target crashed or fell short of N inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Tally:
    """What one target's run saw: inputs, crashing inputs, the first input per crash site."""

    target: str
    engine: str
    limit: int
    inputs: int = 0
    crashes: int = 0
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    first: dict[str, str] = field(default_factory=dict)

    def record(self, value: Any, exc: BaseException) -> None:
        self.crashes += 1
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        site = f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}"
        self.first.setdefault(site, f"{exc!s:.200} <- {value!r:.300}")

    def report(self) -> None:
        self.seconds = round(time.monotonic() - self.started, 1)
        print("TALLY " + json.dumps(self.__dict__), flush=True)


def child(name: str, engine: str, runs: int, max_seconds: float) -> None:
    """Run one target in this process and print its tally as one ``TALLY {json}`` line."""
    sys.path.insert(0, str(ROOT))
    from hypothesis import HealthCheck, Phase, given, settings

    if engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["acdkit"]):
            from tests.fuzz.targets import TARGETS
    else:
        from tests.fuzz.targets import TARGETS
    target = TARGETS[name]
    tally = Tally(name, engine, runs)

    @settings(max_examples=runs, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(target.strategy)
    def one(value: Any) -> None:
        tally.inputs += 1
        try:
            target.run(value)
        except Exception as exc:  # a crash: anything but the typed error the parser may raise
            tally.record(value, exc)
        if engine == "atheris" and (tally.inputs >= runs
                                    or time.monotonic() - tally.started > max_seconds):
            tally.report()
            os._exit(0)  # libFuzzer has no way back to the caller

    if engine == "atheris":
        atheris.Setup([sys.argv[0], "-rss_limit_mb=4096"], one.hypothesis.fuzz_one_input)
        atheris.Fuzz()
    one()
    tally.report()


def _engine(requested: str) -> str:
    if requested != "auto":
        return requested
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "hypothesis"
    return "atheris"


def _run_child(name: str, engine: str, runs: int, max_seconds: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", name, "--engine", engine, "--runs", str(runs),
           "--max-seconds", str(max_seconds)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("TALLY "):
            return dict(json.loads(line[6:]))
    tail = (done.stdout + done.stderr)[-2000:]
    return {"target": name, "engine": engine, "inputs": 0, "crashes": 1, "seconds": 0,
            "first": {f"process exited {done.returncode}": tail}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--runs", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="cap per target")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    engine = _engine(args.engine)
    if args.child:
        child(args.child, engine, args.runs, args.max_seconds)
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.fuzz.targets import TARGETS

    names = args.targets or list(TARGETS)
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {sorted(unknown)}; known: {', '.join(TARGETS)}")
    print(f"{'target':<14} {'engine':<10} {'inputs':>9} {'crashes':>8} {'seconds':>8} "
          f"{'inputs/s':>9}", flush=True)
    failed = False
    for name in names:
        tally = _run_child(name, engine, args.runs, args.max_seconds)
        rate = tally["inputs"] / tally["seconds"] if tally["seconds"] else 0
        print(f"{name:<14} {engine:<10} {tally['inputs']:>9} {tally['crashes']:>8} "
              f"{tally['seconds']:>8} {rate:>9.0f}", flush=True)
        for site, sample in tally["first"].items():
            print(f"    {site}: {sample}", flush=True)
        failed |= bool(tally["crashes"]) or tally["inputs"] < args.runs
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
