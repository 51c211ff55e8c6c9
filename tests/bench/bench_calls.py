"""Calls on the lab, acdkit next to Asterisk alone, measured in one run on one machine:

- inbound capacity: the highest call rate (step search, short steps) at which every caller
  is answered, hears the short prompt, queues and is bridged to a SIPp agent within
  ``--max-wait`` s, with zero failed calls: acdkit's Stasis path (extension 100 with the bench
  IVR: a beep, no menu) against native ``Queue(bench)`` (extension 301: Answer, beep, Queue)
  with the same 200 agents (asterisk/etc/pjsip_agents.conf: enough that Asterisk, not the
  agents, bounds native Queue()) and call length; CPU per call of serve, Asterisk and the
  pool's redis-server at each step;
- set-up latency: caller's INVITE to the agent leg's INVITE, p50/p99, both paths, at a
  modest rate (paired by the caller's number, unique per call:
  src/acdkit/labkit/scenarios/bench_caller.xml);
- callers held: N callers in the holding bridge with music; CPU and RSS of serve and Asterisk;
- dial-back latency: an agent becomes ready (store ``move_agent``) → the INVITE to its phone
  for a due callback (serve + an RQ worker), p50/p99;
- the floor under serve's CPU per call: ``floor_app.py`` (the least an ARI app does for the
  same call: the same 8 requests and 8 events through acdkit's own ARI client, no Redis, no
  flows) in serve's place at extension 100, at 60 and 80 calls/s, next to serve's steps at
  those rates (``--targets floor`` with ``--only capacity`` runs it alone);
- dispatcher claims per second (tests/bench/bench_dispatch.py's JSON, or a short run of it);
- per answered call, serve's Redis round trips and ARI requests (by route): its /metrics
  counters read before a burst and after its calls are gone, divided by the calls an agent
  answered (the window holds serve's background loops too: the dispatcher's sweep, the
  housekeeping, one /metrics scrape).

``--split`` puts Asterisk and the SIPp phones on the first half of the CPUs and serve and its
redis-server on the other half, on both paths: what Asterisk carries when acdkit does not take
its cores, as on a node with cores enough for both (docs/deployment.md puts serve beside
its Asterisk).

Prints a table, never pass/fail; ``--out FILE.json`` writes the figures. Uses a private
redis-server; run it under the lab lock (``make bench`` does):

    flock /tmp/acdkit-lab.lock python tests/bench/bench_calls.py --out var/results/bench-calls.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlab as lab
from tests.lab.conftest import ari_get, hang_up_all, lab_channels, lab_is_up

from acdkit.core.agents import AgentEvent
from acdkit.core.errors import AcdError
from acdkit.labkit.siplog import SipMessage, _uri_user, invites_of
from acdkit.labkit.sipp import CALLER_IP, SCENARIOS, SippProcess, agent_peer, customer_peer

TARGETS = {"acdkit": "100", "native": "301"}
# floor_app.py in serve's place, at serve's extension: the least an ARI app does for a call.
FLOOR = "floor"
EXTENSIONS = {**TARGETS, FLOOR: TARGETS["acdkit"]}
FLOOR_RATES = (60.0, 80.0)  # where the full run measures it, next to acdkit's steps there


def floor_steps(args: argparse.Namespace) -> argparse.Namespace:
    """The full run's options for the floor app: the rates of ``FLOOR_RATES`` only."""
    low, high = FLOOR_RATES
    return argparse.Namespace(**{**vars(args), "start_rate": low, "max_rate": high,
                                 "rate_step": high - low})


# ---- one burst of calls --------------------------------------------------------------------


def caller_invites(messages: list[SipMessage]) -> dict[str, float]:
    """Caller number → time its first INVITE was sent."""
    sent: dict[str, float] = {}
    for m in messages:
        if m.sent and m.method == "INVITE":
            sent.setdefault(_uri_user(m.headers.get("from", "")), m.time)
    return sent


def burst(ext: str, rate: float, calls: int, talk: float, workdir: Path,
          pids: dict[str, int], serve: lab.Serve | None) -> dict[str, Any]:
    """``calls`` callers at ``rate``/s to ``ext``; each agent hangs up ``talk`` s after it
    answered (the same call length on both paths, whatever the set-up took), the caller
    waits for that BYE. Returns per-call set-up times (caller INVITE → agent INVITE),
    failures, CPU, and serve's round trips and requests per answered call (when ``serve``
    runs: not for the floor app)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with agent_peer(workdir=workdir / "agents", hangup="*", hangup_after=talk) as phones:
        phones.start()
        callers = SippProcess(SCENARIOS / "bench_caller.xml", CALLER_IP, service=ext,
                              calls=calls, rate=rate, limit=calls,
                              timeout=calls / rate + talk + 20, keys={"caller_id": "7"},
                              variables={"hold_ms": "0"},
                              workdir=workdir / "callers", name="bench-caller")
        counted = lab.Counters.read(serve) if serve else None
        window = lab.CpuWindow(pids).start()
        result = callers.run()
        cpu = window.stop()
        drain()
        counts = lab.Counters.read(serve) if serve else None
        agent_times = {i.from_user: i.time for i in invites_of(phones.messages())}
    started = caller_invites(result.messages)
    setups = {n: agent_times[n] - t for n, t in started.items() if n in agent_times}
    return {"rate": rate, "calls": calls, "sipp_ok": result.successful,
            "sipp_failed": result.failed + max(0, calls - result.successful - result.failed),
            "setups": setups, "no_agent": sorted(set(started) - set(setups)), "cpu": cpu,
            "serve_per_call": counts.per_call(counted, len(setups))
            if counts and counted else {}}


def drain(timeout: float = 15.0) -> None:
    """Wait until the lab has no channel left (hang up what outlives ``timeout``)."""
    deadline = time.monotonic() + timeout
    while lab_channels() and time.monotonic() < deadline:
        time.sleep(0.2)
    hang_up_all()


def failures(step: dict[str, Any], max_wait: float) -> int:
    late = [n for n, s in step["setups"].items() if s > max_wait]
    return int(step["sipp_failed"]) + len(step["no_agent"]) + len(late)


# ---- capacity, latency -----------------------------------------------------------------------


def capacity(target: str, args: argparse.Namespace, work: Path,
             pids: dict[str, int], serve: lab.Serve) -> dict[str, Any]:
    """Step up the rate until a step has a failure, then try once between the last good and
    the first bad rate. The floor app's steps run with serve stopped and its CPU counted as
    serve's; serve starts again after them."""
    if target != FLOOR:
        return steps_up(target, args, work, pids, serve)
    serve.stop()
    floor = lab.FloorApp(serve, args.agents, work / "floor.log")
    floor.start()
    if args.split:
        lab.pin(floor.pid, lab.halves()[1])
    try:
        result = steps_up(target, args, work, {**pids, "serve": floor.pid}, None)
    finally:
        floor.stop()
        serve.start()
        assert serve.proc is not None
        pids["serve"] = serve.proc.pid
        if args.split:
            lab.pin(serve.proc.pid, lab.halves()[1])
    answered = sum(step["calls"] - step["failed"] for step in result["steps"])
    result["floor_per_call"] = {k: round(v / max(answered, 1), 2)
                                for k, v in floor.counts().items()}
    print(f"  {target:<6} per answered call: {result['floor_per_call']}", flush=True)
    return result


def steps_up(target: str, args: argparse.Namespace, work: Path,
             pids: dict[str, int], serve: lab.Serve | None) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []

    def step(rate: float) -> bool:
        calls = max(1, round(rate * args.step_seconds))
        got = burst(EXTENSIONS[target], rate, calls, args.talk, work / f"{target}-{rate:g}",
                    pids, serve)
        bad = failures(got, args.max_wait)
        setups = list(got["setups"].values())
        steps.append({"rate": rate, "calls": calls, "failed": bad,
                      "setup_p50_ms": 1000 * lab.percentile(setups, 0.5),
                      "setup_p99_ms": 1000 * lab.percentile(setups, 0.99), "cpu": got["cpu"],
                      "serve_per_call": got["serve_per_call"]})
        print(f"  {target:<6} {rate:6.1f} calls/s x {calls:4d}: {bad:3d} failed, set-up p99 "
              f"{steps[-1]['setup_p99_ms']:7.0f} ms, cpu {fmt_cpu(got['cpu'])}, serve "
              f"{1000 * got['cpu']['serve']['cpu_s'] / calls:.1f} ms CPU/call, "
              f"{fmt_counts(got['serve_per_call'])}", flush=True)
        return bad == 0

    best, rate, bad_rate = 0.0, args.start_rate, None
    while rate <= args.max_rate:
        if not step(rate):
            bad_rate = rate
            break
        best, rate = rate, rate + args.rate_step
    if bad_rate is not None and bad_rate - best > 1 and step(mid := round((best + bad_rate) / 2)):
        best = mid
    return {"max_rate": best, "ceiling_reached": bad_rate is None, "steps": steps}


def latency(target: str, args: argparse.Namespace, work: Path,
            pids: dict[str, int], serve: lab.Serve) -> dict[str, Any]:
    got = burst(TARGETS[target], args.latency_rate, args.latency_calls, args.talk,
                work / f"latency-{target}", pids, serve)
    setups = [1000 * s for s in got["setups"].values()]
    print(f"  {target:<6} {fmt_counts(got['serve_per_call'])}", flush=True)
    return {"calls": args.latency_calls, "rate": args.latency_rate, "paired": len(setups),
            "failed": failures(got, args.max_wait), "p50_ms": lab.percentile(setups, 0.5),
            "p99_ms": lab.percentile(setups, 0.99), "max_ms": max(setups, default=0.0),
            "serve_per_call": got["serve_per_call"]}


def fmt_cpu(cpu: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{k} {v['cpu_cores']:.2f}" for k, v in cpu.items())


def fmt_counts(per_call: dict[str, Any]) -> str:
    if not per_call:
        return "no serve counters"
    return (f"serve per answered call: {per_call['redis_round_trips']:.1f} Redis round trips, "
            f"{per_call['ari_requests']:.1f} ARI requests, {per_call['ari_events']:.1f} ARI events")


# ---- callers held, dial-back -------------------------------------------------------------------


def held(serve: lab.Serve, args: argparse.Namespace, work: Path,
         pids: dict[str, int]) -> dict[str, Any]:
    """``args.held`` callers in the holding bridge (every agent paused); CPU over 10 s."""
    n, ramp = args.held, args.held / args.held_rate
    idle_rss = lab.rss_mb(pids["serve"])
    callers = SippProcess(SCENARIOS / "bench_caller.xml", CALLER_IP, service="100", calls=n,
                          rate=args.held_rate, limit=n + 10, timeout=ramp + 120,
                          keys={"caller_id": "8"}, variables={"hold_ms": "0"},
                          workdir=work / "held", name="bench-held").start()
    deadline, holding = time.monotonic() + ramp + 30, 0
    while time.monotonic() < deadline and (holding := bridge_size("hold-sales")) < n:
        time.sleep(0.5)
    time.sleep(2)
    window = lab.CpuWindow(pids).start()
    time.sleep(10)
    cpu = window.stop()
    holding = min(holding, bridge_size("hold-sales"))
    hang_up_all(wait=30)
    callers.wait(30)
    drain()
    return {"callers": n, "held": holding, "cpu": cpu, "serve_idle_rss_mb": round(idle_rss, 1)}


def bridge_size(bridge_id: str) -> int:
    status, body = ari_get(f"bridges/{bridge_id}")
    return len(body.get("channels", [])) if status == 200 and isinstance(body, dict) else 0


async def dial_backs(serve: lab.Serve, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One callback due at a time; an agent becomes ready; time to the INVITE to its phone."""
    settings = lab.settings_of(serve)
    pool = await lab.open_pool(settings)
    samples: list[float] = []
    worker = lab.Worker(serve, work / "worker.log").start()
    time.sleep(3)
    try:
        with agent_peer(workdir=work / "dialback-agents") as phones, \
                customer_peer(workdir=work / "dialback-customers", hangup="*",
                              hangup_after=0.3) as customers:
            phones.start(), customers.start()
            paused = [a.id for a in await pool.list_agents() if a.state.value == "paused"]
            for i in range(1, args.dialbacks + 1):
                agent_id = paused[i % len(paused)]
                task = await lab.book_callback(pool, settings, f"+1212555{1000 + i:04d}",
                                               time.time(), f"bench-cb-{i}")
                await asyncio.sleep(0.2)
                t0 = time.time()
                await pool.move_agent(agent_id, AgentEvent.RESUME, t0)
                samples += [1000 * (await invite_after(phones, f"agent{agent_id}", t0) - t0)]
                await settle(pool, task.id, agent_id)
    finally:
        worker.stop()
        await pool.close()
    # The first is the worker's first job (cold: imports, first connections): apart.
    warm = samples[1:]
    return {"callbacks": args.dialbacks, "measured": len(warm), "cold_ms": samples[0],
            "p50_ms": lab.percentile(warm, 0.5), "p99_ms": lab.percentile(warm, 0.99),
            "max_ms": max(warm, default=0.0), "samples_ms": [round(s, 1) for s in samples]}


async def invite_after(phones: Any, user: str, since: float, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [i.time for i in phones.invites() if i.user == user and i.time >= since - 0.05]
        if found:
            return float(found[0])
        await asyncio.sleep(0.02)
    raise RuntimeError(f"no INVITE to {user} within {timeout}s")


async def settle(pool: Any, task_id: str, agent_id: str, timeout: float = 20.0) -> None:
    """Wait for the callback to end, then pause its agent again (once the call is over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = await pool.get_task(task_id)
        if task is not None and task.terminal:
            try:
                await pool.move_agent(agent_id, AgentEvent.PAUSE, time.time(), reason="bench")
                return
            except AcdError:
                pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"callback {task_id} did not end within {timeout}s")


# ---- dispatcher, table ---------------------------------------------------------------------------


def dispatcher(path: Path | None, work: Path) -> dict[str, Any]:
    if path is None or not path.exists():
        path = work / "dispatch.json"
        subprocess.run([sys.executable, str(Path(__file__).parent / "bench_dispatch.py"),
                        "--seconds", "3", "--claims", "5000", "--out", str(path)], check=True)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def steps_at(cap: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The step at the capacity found, and the first step that failed (None: none did)."""
    good = [s for s in cap["steps"] if s["rate"] == cap["max_rate"] and s["failed"] == 0]
    bad = [s for s in cap["steps"] if s["failed"]]
    return (good[-1] if good else None), (bad[0] if bad else None)


def events_per_call(per_call: dict[str, Any]) -> str:
    events = per_call.get("ari_events")  # not counted in runs made before the event filter
    return "-" if events is None else f"{events:.1f}"


def cpu_per_call(step: dict[str, Any] | None, who: str) -> str:
    if step is None or who not in step["cpu"]:  # runs before Redis was measured had none
        return "-"
    return f"{1000 * step['cpu'][who]['cpu_s'] / step['calls']:.1f}"


def rate_of(step: dict[str, Any] | None) -> str:
    return "none" if step is None else f"{step['rate']:g}"


def cores(step: dict[str, Any] | None) -> str:
    """What serve and Asterisk used in a step: what bound that side shows here."""
    if step is None:
        return "-"
    c = step["cpu"]
    return f"{c['serve']['cpu_cores']:.2f} / {c['asterisk']['cpu_cores']:.2f}"


def all_ask_rows(dispatcher: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The dispatcher's claims when every agent asks at once (runs since 2026-12-06)."""
    return [(f"  {dispatcher['agents']:,} agents at once, {t['in_flight']} claim(s) in flight",
             f"{t['claims_per_s']:,.0f}", "-",
             f"x{t['batch']} per round trip; target 10,000/s")
            for t in dispatcher.get("acdkit_all_ask", [])]


def step_at(cap: dict[str, Any], rate: float) -> dict[str, Any] | None:
    return next((s for s in cap["steps"] if s["rate"] == rate and s["failed"] == 0), None)


def floor_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """serve's CPU per call next to the floor app's (floor_app.py) at the same rates, in the
    same run (runs since 2026-12-07)."""
    floor = r["capacity"].get(FLOOR)
    if floor is None:
        return []
    rows = []
    for rate in FLOOR_RATES:
        acdkit, least = step_at(r["capacity"]["acdkit"], rate), step_at(floor, rate)
        rows.append((f"  at {rate:g} calls/s, CPU per call, ms: serve",
                     cpu_per_call(acdkit, "serve"), "-",
                     f"the floor app (same ARI client, no state): "
                     f"{cpu_per_call(least, 'serve')}"))
    return rows


def _share(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.0%}"


def table(r: dict[str, Any]) -> str:
    cap, lat, h, d = r["capacity"], r["latency"], r["held"], r["dial_back"]
    (a_top, a_bad), (n_top, n_bad) = steps_at(cap["acdkit"]), steps_at(cap["native"])
    a, n = cap["acdkit"]["max_rate"], cap["native"]["max_rate"]
    ratio = a / n if n else 0.0
    hs, ha = h["cpu"]["serve"], h["cpu"]["asterisk"]
    disp = r["dispatcher"]["acdkit"]
    m = r["machine"]
    over = lat["acdkit"]["p99_ms"] - lat["native"]["p99_ms"]
    per_call = lat["acdkit"]["serve_per_call"]
    rows = [
        ("inbound capacity, calls/s, 0 failed", f"{a:g}", f"{n:g}",
         f"ratio {ratio:.2f} (target >= 1.0)"),
        ("  at it, CPU per call, ms: serve", cpu_per_call(a_top, "serve"), "-",
         "target <= 2"),
        ("  at it, CPU per call, ms: Asterisk", cpu_per_call(a_top, "asterisk"),
         cpu_per_call(n_top, "asterisk"), ""),
        ("  at it, CPU per call, ms: Redis", cpu_per_call(a_top, "redis"), "-",
         "the pool's scripts, audit included"),
        ("  at it, cores: serve / Asterisk", cores(a_top), cores(n_top),
         f"of the machine's {r['machine']['cores']}, shared with SIPp" if "cpus" not in r
         else "Asterisk and SIPp on CPUs {asterisk_and_phones}, serve and Redis on "
              "{serve_and_redis}".format(**r["cpus"])),
        ("  first failed step, calls/s", rate_of(a_bad), rate_of(n_bad), ""),
        *floor_rows(r),
        ("set-up INVITE -> agent INVITE p50, ms", f"{lat['acdkit']['p50_ms']:.0f}",
         f"{lat['native']['p50_ms']:.0f}", ""),
        ("set-up INVITE -> agent INVITE p99, ms", f"{lat['acdkit']['p99_ms']:.0f}",
         f"{lat['native']['p99_ms']:.0f}", f"overhead {over:+.0f} ms (target <= 20)"),
        ("serve per call: Redis round trips / ARI reqs",
         f"{per_call['redis_round_trips']:.1f} / {per_call['ari_requests']:.1f}", "-",
         "counters of serve's /metrics over the latency run"),
        ("serve per call: ARI events received", events_per_call(per_call), "-",
         "the types serve acts on only (Asterisk's event filter)"),
        (f"callers held ({h['callers']} called)", f"{h['held']}", "-", "target 200"),
        ("  serve CPU cores / RSS MB", f"{hs['cpu_cores']:.2f} / {hs['rss_mb']:.0f}", "-",
         f"RSS target < 150 (idle {h['serve_idle_rss_mb']:.0f})"),
        ("  Asterisk CPU cores / RSS MB", f"{ha['cpu_cores']:.2f} / {ha['rss_mb']:.0f}", "-", ""),
        ("dial-back ready -> agent INVITE p50/p99, ms",
         f"{d['p50_ms']:.0f} / {d['p99_ms']:.0f}", "-",
         f"n={d['measured']} + 1 cold ({d['cold_ms']:.0f} ms); p99 target <= 50"),
        (f"dispatcher claims/s, {r['dispatcher']['tasks'] // 1000}k tasks, one agent",
         f"{disp['claims_per_s']:,.0f}",
         f"naive {r['dispatcher']['naive']['claims_per_s']:.2f}",
         f"p99 {disp['p99_ms']:.2f} ms (target p99 <= 1 ms)"),
        *all_ask_rows(r["dispatcher"]),
    ]
    lines = [f"machine: {m['cores']} cores, {m['model']}, {m['memory_gb']} GB; load average "
             f"before {m['loadavg']}, after {r['loadavg_after']}; CPU time taken by the host "
             f"(steal) during the run: {_share(r.get('steal'))}; code {m.get('code') or '?'}, "
             f"{m.get('date', '?')}",
             f"call: answer, beep, queue, the agent answers at once and hangs up {r['talk']} s "
             f"later; a call fails if SIPp fails it or no agent is rung within "
             f"{r['max_wait']} s; {r['agents']} agents",
             "", f"| {'figure':<46} | {'acdkit':>13} | {'native Queue()':>14} | note",
             f"|{'-' * 48}|{'-' * 15}|{'-' * 16}|-----"]
    lines += [f"| {f:<46} | {x:>13} | {y:>14} | {z}" for f, x, y, z in rows]
    return "\n".join(lines)


# ---- main ------------------------------------------------------------------------------------


def options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    p.add_argument("--table", type=Path, help="print the table of a JSON this wrote; run nothing")
    p.add_argument("--dispatch-json", type=Path, help="bench_dispatch.py's JSON (else: run it)")
    p.add_argument("--talk", type=float, default=0.2, help="s from agent answer to its BYE")
    p.add_argument("--max-wait", type=float, default=2.0, help="s from INVITE to agent INVITE")
    p.add_argument("--step-seconds", type=float, default=6.0, help="s of calls per rate step")
    p.add_argument("--start-rate", type=float, default=20.0)
    p.add_argument("--rate-step", type=float, default=20.0)
    p.add_argument("--max-rate", type=float, default=260.0)
    p.add_argument("--latency-rate", type=float, default=5.0)
    p.add_argument("--latency-calls", type=int, default=100)
    p.add_argument("--held", type=int, default=200)
    p.add_argument("--held-rate", type=float, default=25.0)
    p.add_argument("--dialbacks", type=int, default=30)
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--split", action="store_true",
                   help="Asterisk and the phones on one half of the CPUs, serve and Redis on "
                        "the other")
    p.add_argument("--only", choices=["capacity", "held"],
                   help="run only this part (prints its figures, no table): quick A/B runs")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help="comma-separated paths for --only capacity (acdkit, native, floor: "
                        "floor_app.py in serve's place)")
    return p.parse_args()


async def prepare(url: str, serve: lab.Serve, agents: int) -> None:
    pool = await lab.open_pool(lab.settings_of(serve))
    try:
        await lab.add_agents(pool, agents, time.time())
    finally:
        await pool.close()


async def pause_all(serve: lab.Serve, agents: int) -> list[str]:
    """Pause every agent; return those that cannot be paused (left on a call or reserved
    with no call up: a leak the capacity steps caused)."""
    pool = await lab.open_pool(lab.settings_of(serve))
    stuck = []
    try:
        for i in range(1, agents + 1):
            try:
                await pool.move_agent(str(i), AgentEvent.PAUSE, time.time(), reason="bench")
            except AcdError as exc:
                stuck.append(f"agent {i}: {exc}")
    finally:
        await pool.close()
    return stuck


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    ticks = lab.cpu_ticks()
    result: dict[str, Any] = {"machine": lab.machine(), "talk": args.talk,
                              "max_wait": args.max_wait, "agents": args.agents}
    everywhere = os.sched_getaffinity(0)
    if args.only is None:
        result["dispatcher"] = dispatcher(args.dispatch_json, work)
    redis = lab.RedisServer().start()
    serve = lab.new_serve(redis.url, work)
    ast = None
    try:
        asyncio.run(prepare(redis.url, serve, args.agents))
        serve.start()
        ast = lab.asterisk_pid()
        assert serve.proc is not None and ast is not None, "serve or Asterisk not found"
        assert redis.proc is not None
        pids = {"serve": serve.proc.pid, "asterisk": ast, "redis": redis.proc.pid}
        if args.split:
            pbx, apart = lab.halves()
            lab.pin(ast, pbx)
            lab.pin(serve.proc.pid, apart)
            lab.pin(redis.proc.pid, apart)
            os.sched_setaffinity(0, pbx)  # the SIPp phones start from here
            result["cpus"] = {"asterisk_and_phones": sorted(pbx),
                              "serve_and_redis": sorted(apart)}
        if args.only == "capacity":
            result["capacity"] = {t: capacity(t, args, work, pids, serve)
                                  for t in args.targets.split(",")}
            result["steal"] = lab.steal_share(ticks, lab.cpu_ticks())
            return result
        if args.only == "held":
            asyncio.run(pause_all(serve, args.agents))
            result["held"] = held(serve, args, work, pids)
            print(f"held: {result['held']}", flush=True)
            return result
        print("latency (modest rate):", flush=True)
        result["latency"] = {t: latency(t, args, work, pids, serve) for t in TARGETS}
        print("capacity (step search):", flush=True)
        result["capacity"] = {t: capacity(t, args, work, pids, serve) for t in TARGETS}
        print("the floor app at the same rates:", flush=True)
        result["capacity"][FLOOR] = capacity(FLOOR, floor_steps(args), work, pids, serve)
        result["agents_stuck_after_capacity"] = asyncio.run(pause_all(serve, args.agents))
        print(f"agents stuck after the capacity steps: {result['agents_stuck_after_capacity']}")
        print(f"{args.held} callers held ...", flush=True)
        result["held"] = held(serve, args, work, pids)
        print("dial-back latency ...", flush=True)
        result["dial_back"] = asyncio.run(dial_backs(serve, args, work))
        drain()
    finally:
        if args.split and ast is not None:
            lab.pin(ast, everywhere)  # the lab's Asterisk serves the tests too
            os.sched_setaffinity(0, everywhere)
        serve.stop()
        hang_up_all()
        redis.stop()
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["steal"] = lab.steal_share(ticks, lab.cpu_ticks())
    return result


def main() -> int:
    args = options()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    if not lab_is_up():
        sys.exit("the lab is not up: make lab-up")
    work = Path(tempfile.mkdtemp(prefix="acdkit-bench-calls-"))
    result = run(args, work)
    if args.only is None:
        print(table(result))
    print(f"(logs in {work})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
