"""``acdkit doctor`` on a running install: are acdkit's processes up, is work late, does Redis
have room (docs/operations.md "Checking a running install").

- processes: RQ workers by their heartbeat in Redis (any host); ``serve``, ``agi`` and ``web``
  by the command lines in /proc (this host: run doctor where they run);
- lag: how late the oldest due task is, and the jobs waiting on each RQ queue;
- memory: ``used_memory`` against ``maxmemory`` (with ``noeviction`` a full Redis refuses
  writes, so new calls and callbacks fail: it must never get there).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from acdkit.checks import Check, doctor_client
from acdkit.config import Settings
from acdkit.jobqueue import QUEUES
from acdkit.store.keys import Keys

ROLES = ("serve", "agi", "worker", "web")
WORKER_STALE = 120.0  # seconds without an RQ heartbeat: the worker is gone
LATE_WARN, LATE_FAIL = 60.0, 600.0  # seconds the oldest due task waits to be enqueued
MEMORY_WARN, MEMORY_FAIL = 0.8, 0.95  # used_memory / maxmemory


async def check_install(settings: Settings) -> list[Check]:
    """Processes, lag and Redis memory; a Redis that does not answer is check_redis's FAIL."""
    client = doctor_client(settings)
    try:
        now = time.time()
        workers = await rq_worker_ages(client, now)
        due = await client.zrange(Keys(settings.redis.prefix).due, 0, 0, withscores=True)
        backlog = {q: int(await client.llen(f"rq:queue:{q}")) for q in QUEUES}
        memory = await client.info("memory")
    except Exception as exc:  # a finding, not a crash: doctor reports and goes on
        return [Check("install", "WARN", f"could not read Redis: {exc or type(exc).__name__}")]
    finally:
        await client.aclose()
    found = check_processes(running_roles(), workers)
    found.append(check_lag(now, float(due[0][1]) if due else None, backlog))
    found.append(check_memory(memory))
    return found


async def rq_worker_ages(client: Any, now: float) -> list[float]:
    """Seconds since each registered RQ worker's last heartbeat."""
    ages = []
    for name in await client.smembers("rq:workers"):
        beat = await client.hget(name if name.startswith("rq:worker:") else
                                 f"rq:worker:{name}", "last_heartbeat")
        ages.append(now - _epoch(beat) if beat else float("inf"))
    return ages


def _epoch(text: str) -> float:
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def running_roles(proc: Path = Path("/proc")) -> set[str]:
    """acdkit roles (serve, agi, worker, web) with a process on this host."""
    roles = set()
    for cmdline in proc.glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        roles |= roles_in([a.decode(errors="replace") for a in args if a])
    return roles


def roles_in(args: list[str]) -> set[str]:
    """The role of ``acdkit [options] ROLE`` or ``python -m acdkit [options] ROLE``."""
    for i, arg in enumerate(args):
        if Path(arg).name == "acdkit" or (arg == "acdkit" and i and args[i - 1] == "-m"):
            words = [a for a in args[i + 1:] if not a.startswith("-")]
            return {words[0]} & set(ROLES) if words else set()
    return set()


def check_processes(local: set[str], worker_ages: Iterable[float]) -> list[Check]:
    ages = list(worker_ages)
    live = [a for a in ages if a <= WORKER_STALE]
    found = [Check("process worker", "OK" if live else "FAIL",
                   f"{len(live)} RQ worker(s) with a heartbeat in the last {WORKER_STALE:.0f} s"
                   + (f" ({len(ages) - len(live)} stale)" if len(ages) > len(live) else "")
                   + ("" if live else ": callbacks and voice requests wait; start "
                      "`acdkit worker`"))]
    for role in ("serve", "agi", "web"):
        found.append(Check(f"process {role}", "OK" if role in local else "WARN",
                           f"`acdkit {role}` runs on this host" if role in local else
                           f"no `acdkit {role}` on this host (fine if it runs elsewhere or "
                           f"this mode is not used)"))
    return found


def check_lag(now: float, oldest_due: float | None, backlog: Mapping[str, int]) -> Check:
    late = max(0.0, now - oldest_due) if oldest_due is not None else 0.0
    waiting = ", ".join(f"{q} {n}" for q, n in backlog.items())
    status = "FAIL" if late > LATE_FAIL else "WARN" if late > LATE_WARN else "OK"
    return Check("lag", status, f"oldest due task {late:.0f} s late; jobs waiting: {waiting}"
                 + ("" if status == "OK" else ": is `acdkit serve` running its dispatcher?"))


def check_memory(info: Mapping[str, Any]) -> Check:
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    mib = f"{used / 2**20:.1f} MiB used"
    if not limit:
        return Check("redis memory", "WARN", f"{mib}, no maxmemory: set one below the host's "
                     "memory so Redis refuses writes before the kernel kills it")
    share = used / limit
    status = "FAIL" if share > MEMORY_FAIL else "WARN" if share > MEMORY_WARN else "OK"
    return Check("redis memory", status, f"{mib} of {limit / 2**20:.0f} MiB ({share:.0%})"
                 + ("" if status == "OK" else ": at maxmemory new tasks are refused"))
