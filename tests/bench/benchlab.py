"""What `make bench` and `make chaos` share: a private redis-server, `acdkit serve` and
`acdkit worker` as processes on the lab, CPU and RSS read from /proc, serve's counters of
Redis round trips and ARI requests (its /metrics), the machine's description, the bench
settings file, agents and callbacks written straight to the pool.

psutil is not a dependency: CPU comes from /proc/<pid>/stat (utime + stime, clock ticks) and
RSS from /proc/<pid>/status (VmRSS). Asterisk's pid is the lab container's main process
(``podman inspect``), or the first ``asterisk`` found in /proc.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
for _path in (str(ROOT), str(ROOT / "src")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import redis  # noqa: E402
from floor_app import COUNTS as FLOOR_COUNTS  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tests.lab.conftest import LAB_CONFIG, Serve, Worker  # noqa: E402, F401 (Worker: for bench_calls, chaos)

from acdkit.config import Settings, load_settings  # noqa: E402
from acdkit.core.agents import Agent, AgentEvent  # noqa: E402
from acdkit.core.tasks import Task, TaskKind, TaskState  # noqa: E402
from acdkit.policies import number_policy  # noqa: E402
from acdkit.services.callbacks import callback_store  # noqa: E402
from acdkit.store.pool import Pool  # noqa: E402

# The bench IVR: a short prompt (beep), no menu, every caller to sales at once. Extension
# 301 (dialplan/extensions_acdkit.conf) plays the same beep before native Queue(bench).
BENCH_IVR = """
[ivr.main]
greeting = ["sound:beep"]
prompt = []
choices = { "1" = "sales" }
default = "sales"
timeout = 0.01
attempts = 1
"""
# Short timers, no offers or announcements talking over the queue, no whisper.
BENCH_ENV = {
    "ACDKIT_AGENTS_WRAP_UP": "0", "ACDKIT_AGENTS_RING_TIMEOUT": "5",
    "ACDKIT_AGENTS_WHISPER": "false", "ACDKIT_OVERFLOW_WHEN_NO_AGENTS": "false",
    "ACDKIT_OVERFLOW_WHEN_OUT_OF_HOURS": "false", "ACDKIT_OVERFLOW_WAIT_OVER": "0",
    "ACDKIT_OVERFLOW_POSITION_OVER": "0", "ACDKIT_QUEUE_ANNOUNCE_EVERY": "3600",
    "ACDKIT_QUEUE_MAX_WAIT": "3600",
}


def machine() -> dict[str, Any]:
    """Cores, CPU model, memory and the load average right now."""
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"cores": os.cpu_count(), "model": model, "memory_gb": round(mem_kb / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "code": _code()}


def _code() -> str:
    """The commit measured (``-dirty`` with changes not committed), or '' outside git."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"],
                              capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_ticks() -> tuple[int, int]:
    """(stolen, all) CPU ticks of the whole machine so far (/proc/stat): the share of the
    machine's time that its host gave to others between two readings, which slows every
    figure of a run (on a VM)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time stolen by the host between two ``cpu_ticks`` readings."""
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total > 0 else 0.0


# ---- redis-server --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A private redis-server on its own port and directory; AOF (fsync always) if asked."""

    def __init__(self, *, aof: bool = False, workdir: Path | None = None) -> None:
        self.binary = shutil.which("redis-server") or sys.exit("redis-server is missing: make deps")
        self.port = free_port()
        self.aof = aof
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="acdkit-bench-redis-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        persist = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else \
            ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, "--save", "", *persist, "--port", str(self.port), "--bind",
             "127.0.0.1", "--dir", str(self.workdir), "--maxmemory-policy", "noeviction",
             "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port)
        try:
            for _ in range(400):
                with contextlib.suppress(redis.ConnectionError, redis.BusyLoadingError):
                    if client.ping():
                        return self
                time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL (what a crash does); with AOF on, a restart replays every write."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self, *, remove: bool = True) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        if remove:
            shutil.rmtree(self.workdir, ignore_errors=True)


# ---- acdkit processes ----------------------------------------------------------------------


def bench_config(workdir: Path) -> Path:
    """The lab's acdkit.toml plus the bench IVR, written into ``workdir``."""
    path = workdir / "acdkit-bench.toml"
    path.write_text(LAB_CONFIG.read_text() + BENCH_IVR)
    return path


def new_serve(redis_url: str, workdir: Path, env: dict[str, str] | None = None) -> Serve:
    """`acdkit serve` (not started) with the bench settings and ``env`` on top."""
    return Serve(redis_url, workdir / "serve.log",
                 env={"ACDKIT_CONFIG": str(bench_config(workdir)), **BENCH_ENV, **(env or {})})


def settings_of(serve: Serve) -> Settings:
    return load_settings(env=serve.env())


class FloorApp(Serve):
    """``floor_app.py`` (the least an ARI app does for a call) as a process with ``serve``'s
    settings, in its place: serve must be stopped first, they share the ARI app. Started and
    stopped as serve is (its ARI client logs the same registration)."""

    def __init__(self, serve: Serve, agents: int, log_path: Path) -> None:
        super().__init__(serve.redis_url, log_path, serve.extra_env)
        self.agents = agents

    def launch(self, prefix: tuple[str, ...] = ()) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [*prefix, sys.executable, str(Path(__file__).with_name("floor_app.py")),
                 "--agents", str(self.agents)],
                env=self.env(), stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def counts(self) -> dict[str, int]:
        """The ARI requests and events it counted, once stopped."""
        counted = [line.split(FLOOR_COUNTS, 1)[1] for line in self.log().splitlines()
                   if FLOOR_COUNTS in line]
        return json.loads(counted[-1]) if counted else {}


# ---- /proc ---------------------------------------------------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def asterisk_pid() -> int | None:
    """The lab Asterisk's host pid: the container's main process, else /proc by name."""
    with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
        env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "asterisk" / "containers.conf")}
        name = os.environ.get("LAB_ASTERISK", "acdkit-asterisk")  # a private lab's (lab-ns.sh)
        out = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", name],
                             capture_output=True, text=True, timeout=10, env=env).stdout
        pid = int(out.strip() or 0)
        if pid and Path(f"/proc/{pid}/comm").read_text().strip() == "asterisk":
            return pid
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "asterisk":
                return int(entry.name)
    return None


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process ``pid`` on ``cpus``; the threads it starts later inherit it."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(tid), cpus)


def halves() -> tuple[set[int], set[int]]:
    """This machine's CPUs in two halves (the first for the PBX, the second for acdkit)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--split needs two CPUs at least")
    return set(cpus[:len(cpus) // 2]), set(cpus[len(cpus) // 2:])


@dataclass
class CpuWindow:
    """CPU use of some processes between ``start()`` and ``stop()``, in cores."""

    pids: dict[str, int]
    started: float = 0.0
    base: dict[str, float] | None = None

    def start(self) -> CpuWindow:
        self.started = time.monotonic()
        self.base = {k: cpu_seconds(p) for k, p in self.pids.items()}
        return self

    def stop(self) -> dict[str, dict[str, float]]:
        assert self.base is not None
        elapsed = time.monotonic() - self.started
        used = {k: cpu_seconds(p) - self.base[k] for k, p in self.pids.items()}
        return {k: {"cpu_cores": round(used[k] / elapsed, 3), "cpu_s": round(used[k], 2),
                    "rss_mb": round(rss_mb(p), 1)} for k, p in self.pids.items()}


# ---- serve's counters (/metrics) -------------------------------------------------------------


@dataclass(frozen=True)
class Counters:
    """serve's Redis round trips, ARI requests (by "METHOD route") and ARI events (by
    type) so far."""

    redis: float
    ari: dict[str, float]
    events: dict[str, float] = field(default_factory=dict)

    @classmethod
    def read(cls, serve: Serve) -> Counters:
        url = f"http://{settings_of(serve).requests.media_listen}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            text = reply.read().decode()
        redis_trips, ari, events = 0.0, {}, {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "acdkit_redis_round_trips_total":
                    redis_trips = s.value
                elif s.name == "acdkit_ari_requests_total":
                    ari[f"{s.labels['method']} {s.labels['route']}"] = s.value
                elif s.name == "acdkit_ari_events_total":
                    events[s.labels["type"]] = s.value
        return cls(redis_trips, ari, events)

    def per_call(self, before: Counters, calls: int) -> dict[str, Any]:
        """What happened since ``before``, per call (of ``calls``): round trips, requests,
        and the requests by route (the window holds serve's background loops too)."""
        n = max(calls, 1)
        routes = {k: (v - before.ari.get(k, 0.0)) / n for k, v in self.ari.items()}
        kinds = {k: (v - before.events.get(k, 0.0)) / n for k, v in self.events.items()}
        return {"calls": calls, "redis_round_trips": round((self.redis - before.redis) / n, 2),
                "ari_requests": round(sum(routes.values()), 2),
                "ari_by_route": {k: round(v, 2) for k, v in sorted(routes.items()) if v},
                "ari_events": round(sum(kinds.values()), 2),
                "ari_events_by_type": {k: round(v, 2) for k, v in sorted(kinds.items()) if v}}


# ---- the pool, written directly --------------------------------------------------------------


async def open_pool(settings: Settings) -> Pool:
    from acdkit.bootstrap import open_pool as opened

    return await opened(settings)


async def add_agents(pool: Pool, count: int, now: float, *, ready: bool = True) -> list[str]:
    """Agents 1..count with skill sales at PJSIP/agentN, per call, logged in (then paused
    unless ``ready``)."""
    ids = [str(i) for i in range(1, count + 1)]
    for agent_id in ids:
        await pool.save_agent(Agent(id=agent_id, name=f"bench {agent_id}", skills={"sales": 5}))
        await pool.move_agent(agent_id, AgentEvent.LOGIN, now, reach=f"PJSIP/agent{agent_id}")
        if not ready:
            await pool.move_agent(agent_id, AgentEvent.PAUSE, now, reason="bench")
    return ids


async def book_callback(pool: Pool, settings: Settings, number: str, now: float,
                        task_id: str) -> Task:
    """A callback for ``number`` (E.164) in sales, queued now, as the overflow offer books it
    for a caller calling from that number (each number is its own caller, so the per-caller
    and anonymous booking limits do not refuse a benchmark's bookings)."""
    task = Task(id=task_id, kind=TaskKind.CALLBACK, skill="sales", created_at=now,
                enqueued_at=now, number=number, source="bench", state=TaskState.QUEUED)
    store = callback_store(pool, settings)
    result = await store.book_callback(task, policy=number_policy(settings),
                                       caller_number=number.lstrip("+"),
                                       now=now)
    return result.task


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0
