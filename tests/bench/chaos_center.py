"""The processes `make chaos` runs and the faults it injects into them.

Redis is one redis-server (AOF, fsync always) or, with ``--sentinel``, a Sentinel group of
one primary, two replicas and three sentinels, each a container of the lab image
(tests/lab/containers.py), that serve,
the worker and the booker reach through the sentinels, with every booking, claim and dial
lock confirmed by a replica (``redis.min_replicas_ack = 1``, docs/redis-ha.md). serve is one
process or, with ``--standby``, an active and a standby under the node's lease
(docs/standby.md).

Faults: ``worker`` SIGKILL the worker (restarted 0.2-2 s later); ``serve`` SIGKILL the
active serve (restarted at once; with a standby it comes back as the standby and the other
takes over); ``redis`` SIGKILL redis-server (restarted on its AOF 1 s later); ``failover``
the Redis primary failed over (odd ones by ``SENTINEL FAILOVER``, even ones by a SIGKILL of
the primary, brought back as a replica once a new primary is up); ``asterisk`` restart the
lab's Asterisk; ``asterisk_stop`` stop it for ``--stop-seconds`` and start it again."""

from __future__ import annotations

import argparse
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import benchlab as lab
from tests.integration.sentinels import MASTER
from tests.lab.conftest import ROOT, Serve
from tests.lab.containers import SentinelContainers

ENV = {"ACDKIT_AGENTS_WRAP_UP": "0.5", "ACDKIT_AGENTS_RING_TIMEOUT": "4",
       "ACDKIT_CALLBACKS_INTERVALS": "2,2,2", "ACDKIT_CALLBACKS_MAX_ATTEMPTS": "3",
       "ACDKIT_QUEUE_MAX_WAIT": "45"}
# Both serves of the node under its lease. A serve that cannot renew for ttl - margin
# stops itself (75): longer than a failover of the Redis primary (down-after 1 s, then the
# election), so a failover alone does not hand the node over (docs/standby.md).
LEASE = {"ACDKIT_NODE_ID": "chaos", "ACDKIT_NODE_LEASE": "true",
         "ACDKIT_NODE_LEASE_TTL": "10", "ACDKIT_NODE_LEASE_MARGIN": "2",
         "ACDKIT_NODE_STANDBY_POLL": "0.5"}
FENCED = 75  # serve's exit status when it stopped itself for a lease it could not renew
ACTIVE = re.compile(r"active \(lease epoch (\d+)\)")


class Redis:
    """One redis-server, or a Sentinel group; ``env`` points acdkit at it."""

    def __init__(self, work: Path, sentinel: bool) -> None:
        self.group: SentinelContainers | None = None
        self.single: lab.RedisServer | None = None
        self.failovers = 0
        if sentinel:
            (work / "redis").mkdir(parents=True, exist_ok=True)
            self.group = SentinelContainers(work / "redis")
            self.group.start()
            self.url = f"redis://127.0.0.1:{self.group.data[0]}/0"
            self.env = {"ACDKIT_REDIS_SENTINELS": self.group.sentinel_list,
                        "ACDKIT_REDIS_MASTER_NAME": MASTER,
                        "ACDKIT_REDIS_MIN_REPLICAS_ACK": "1",
                        "ACDKIT_REDIS_ACK_TIMEOUT_MS": "1000"}
        else:
            self.single = lab.RedisServer(aof=True, workdir=work / "redis").start()
            self.url = self.single.url
            self.env = {}

    def restart(self) -> None:
        assert self.single is not None
        self.single.kill()
        time.sleep(1.0)
        self.single.start()

    def fail_over(self) -> str:
        """Fail the primary over; say how (and how long the group had no primary)."""
        assert self.group is not None
        self.failovers += 1
        if self.failovers % 2:
            old, new = self.group.failover()
            return f"SENTINEL FAILOVER {old} -> {new}"
        old = self.group.primary()
        self.group.kill(old)
        new = self.group.wait_new_primary(old)
        self.group.start_data(old, replica_of=new)
        return f"SIGKILL primary {old} -> {new}"

    def stop(self) -> None:
        if self.group is not None:
            self.group.close()
        if self.single is not None:
            self.single.stop(remove=False)


class Center:
    """The processes under test and the fault injectors."""

    def __init__(self, work: Path, args: argparse.Namespace) -> None:
        self.work, self.args = work, args
        self.redis = Redis(work, args.sentinel)
        env = {**ENV, **self.redis.env, **(LEASE if args.standby else {})}
        self.serves = [lab.new_serve(self.redis.url, work, env)]
        if args.standby:
            self.serves.append(Serve(self.redis.url, work / "serve-2.log", dict(env)))
        self.serve = self.serves[0]  # the settings every client of the center uses
        self.worker = lab.Worker(self.serve, work / "worker.log")
        self.injected: list[dict[str, Any]] = []
        self.asterisk_cuts: list[tuple[float, float]] = []
        self.crashes: list[str] = []
        self.fenced: list[str] = []
        self.takeovers: list[float] = []  # s from the active's kill to the standby's app

    def start(self) -> None:
        self.serves[0].start(wait=30)
        for standby in self.serves[1:]:
            standby.launch()
        self.worker.start()

    def inject(self, kind: str) -> None:
        started = time.time()
        detail = getattr(self, f"_{kind}")() or ""
        self.injected.append({"kind": kind, "at": round(started, 3), "detail": detail,
                              "took_s": round(time.time() - started, 2)})
        print(f"  {time.strftime('%H:%M:%S')} {kind:<13} ({time.time() - started:.1f} s) "
              f"{detail}", flush=True)

    def _worker(self) -> None:
        self.worker.kill()
        time.sleep(random.uniform(0.2, 2.0))
        self.worker.start()

    def _serve(self) -> str:
        active = self.active()
        if len(self.serves) == 1:
            active.stop(sig=9)
            active.start(wait=30)
            return ""
        standby = next(s for s in self.serves if s is not active)
        before = standby.registrations()
        killed = time.monotonic()
        active.stop(sig=signal.SIGKILL)
        took = standby.wait_registered(30, more_than=before)
        self.takeovers.append(round(time.monotonic() - killed, 2))
        active.launch()  # the killed one comes back as the standby
        return f"standby took over in {took:.2f} s"

    def _redis(self) -> None:
        self.redis.restart()

    def _failover(self) -> str:
        return self.redis.fail_over()

    def _asterisk(self) -> None:
        self._asterisk_down(0)

    def _asterisk_stop(self) -> str:
        """The node's Asterisk down for --stop-seconds: its calls are cut, nothing else may
        be lost; serve keeps retrying its ARI WebSocket meanwhile."""
        return self._asterisk_down(self.args.stop_seconds)

    def _asterisk_down(self, seconds: float) -> str:
        started = time.time()
        subprocess.run(["bash", str(ROOT / "scripts" / "lab-restart-asterisk.sh"),
                        *([f"{seconds:g}"] if seconds else [])],
                       check=True, capture_output=True, timeout=180 + seconds)
        self.asterisk_cuts.append((started, time.time()))
        return f"down {time.time() - started:.0f} s"

    def active(self) -> Serve:
        """The serve that holds the node's app now: the one alone, or the running one whose
        log shows the latest lease epoch taken."""
        if len(self.serves) == 1:
            return self.serves[0]
        running = [s for s in self.serves if s.proc is not None and s.proc.poll() is None]
        return max(running, key=lambda s: max(map(int, ACTIVE.findall(s.log())), default=0))

    def watch(self) -> None:
        """Restart serve or the worker if one died by itself (and say so). A serve that
        stopped itself for a lease it could not renew is fenced, not crashed; it comes back
        as the standby."""
        for serve in self.serves:
            if serve.proc is None or serve.proc.poll() is None:
                continue
            code = serve.proc.returncode
            serve.proc = None
            if code == FENCED and len(self.serves) > 1:
                self.fenced.append(time.strftime("%H:%M:%S"))
                print(f"  ! serve stopped itself (lease not renewed) at {self.fenced[-1]}",
                      flush=True)
                serve.launch()
                continue
            self.crashes.append(f"serve exited by itself (rc {code}) "
                                f"at {time.strftime('%H:%M:%S')}")
            print(f"  ! {self.crashes[-1]}", flush=True)
            if len(self.serves) > 1:
                serve.launch()
            else:
                serve.start(wait=30)
        if self.worker.proc is not None and self.worker.proc.poll() is not None:
            self.crashes.append(f"worker exited by itself (rc {self.worker.proc.returncode})")
            print(f"  ! {self.crashes[-1]}", flush=True)
            self.worker.start()

    def stop(self) -> None:
        self.worker.stop()
        for serve in self.serves:
            serve.stop()
        self.redis.stop()

