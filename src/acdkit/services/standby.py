"""One active `serve` per node and ARI app, the others standby (docs/standby.md).

``LeaseKeeper.acquire`` waits as a standby: it asks for the node's lease (store/lease.py)
every ``node.standby_poll`` seconds and returns once this process holds it; `serve` connects
ARI only then. ``LeaseKeeper.keep`` renews it every ``ttl / 3`` and raises ``LeaseLost`` the
moment this process may no longer act (core/lease.py: not renewed before its own deadline,
or found gone or taken); `serve` then closes ARI, stops its dispatcher and flows and exits.

A holder proven dead on this very machine (same host name and pid namespace, its process
gone: a SIGKILLed serve that systemd starts again) is replaced at once rather than after its
lease expires. Anywhere else, or when in doubt, the lease's expiry in Redis decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from acdkit.config import Settings
from acdkit.core.errors import AcdError, LeaseLost
from acdkit.core.lease import (
    LeaseTerms,
    check_node_id,
    deadline,
    may_act,
    next_renew,
    node_id_from_host,
)
from acdkit.limits import RateLimitedLog
from acdkit.store.lease import NodeLease
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
say = RateLimitedLog(log)
LISTED_POLLS = 3  # a standby stays listed (acdkit doctor) this many polls after its last try


def node_id(settings: Settings) -> str:
    """``node.id``, or the host name's first label when it is empty."""
    return check_node_id(settings.node.id or node_id_from_host(socket.gethostname()))


def lease_terms(settings: Settings) -> LeaseTerms:
    n = settings.node
    return LeaseTerms(n.lease_ttl, n.lease_margin, n.standby_poll)


def node_lease(pool: Pool, settings: Settings) -> NodeLease:
    """The lease of this node's ARI app, in ``pool``'s Redis, confirmed like its claims."""
    return NodeLease(pool.redis, pool.keys, pool.durability, node_id(settings),
                     settings.ari.app)


def keeper_of(pool: Pool, settings: Settings) -> LeaseKeeper | NoLease:
    """This process's keeper of its node's lease (``[node]`` settings); a keeper that holds
    nothing when ``node.lease`` is off (one serve per node, no standby)."""
    if not settings.node.lease:
        return NoLease()
    return LeaseKeeper(node_lease(pool, settings), lease_terms(settings),
                       f"node {node_id(settings)}, app {settings.ari.app}")


# -- who holds the lease: a token that names the process ---------------------------------


@dataclass(frozen=True)
class Process:
    """A process as its token names it: host, pid namespace, pid, start time (clock ticks
    since boot, which tells a reused pid apart)."""

    host: str
    pidns: str
    pid: int
    started: str


def this_process() -> Process:
    pid = os.getpid()
    return Process(socket.gethostname(), _pid_namespace(), pid, _start_time(pid) or "")


def token_of(process: Process) -> str:
    """``host/pidns/pid/start/nonce``: unique per acquisition try, readable in doctor."""
    return "/".join((process.host, process.pidns, str(process.pid), process.started,
                     secrets.token_hex(4)))


def process_of(token: str) -> Process | None:
    parts = token.split("/")
    if len(parts) != 5 or not parts[2].isdigit():
        return None
    return Process(parts[0], parts[1], int(parts[2]), parts[3])


def shown(token: str) -> str:
    """A holder's token as ``host pid N`` for people (the rest only tells processes apart)."""
    holder = process_of(token)
    return f"{holder.host} pid {holder.pid}" if holder else token[:80]


def is_dead(token: str, me: Process) -> bool:
    """True only when ``token``'s process ran on this machine, in this pid namespace, and is
    gone (or a zombie, or its pid now belongs to another process)."""
    holder = process_of(token)
    if holder is None or not me.pidns or (holder.host, holder.pidns) != (me.host, me.pidns):
        return False
    return holder.pid != me.pid and _start_time(holder.pid) != holder.started


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:  # no /proc (not Linux): never prove a holder dead
        return ""


def _start_time(pid: int) -> str | None:
    """The start time of a living process ``pid`` (None when gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return None
    return None if len(fields) < 20 or fields[0] in ("Z", "X") else fields[19]


# -- the standby's wait and the holder's renewals ---------------------------------------------


class LeaseKeeper:
    """This process's hold on its node's lease."""

    def __init__(self, lease: NodeLease, terms: LeaseTerms, what: str,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.lease = lease
        self.terms = terms
        self.what = what  # "node a, app acdkit": for the log lines
        self.monotonic = monotonic
        self.me = this_process()
        self.token = token_of(self.me)
        self.epoch = 0
        self.renewed_at = 0.0  # monotonic send time of the last confirmed take or renew

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait as a standby until this process holds the lease (True), or until ``stop``
        is set (False). Logs once that it waits, and whom for."""
        waiting = False
        while not stop.is_set():
            holder = await self._try()
            if not holder:
                log.info("%s: active (lease epoch %d)", self.what, self.epoch)
                return True
            if not waiting:
                log.info("%s: standby; the lease is held by %s", self.what, shown(holder))
                waiting = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.terms.poll)
        return False

    async def _try(self) -> str:
        """Try once to take the lease: "" when taken, else who holds it (or why not)."""
        sent = self.monotonic()
        listed = round(LISTED_POLLS * self.terms.poll * 1000)
        try:
            holder = (await self.lease.state()).holder
            dead = holder if holder and is_dead(holder, self.me) else ""
            if dead:
                log.warning("%s: the lease holder %s is gone; taking over", self.what,
                            shown(dead))
            self.epoch = await self.lease.take(self.token, self.terms.ttl_ms, listed, dead)
        except AcdError as exc:  # Redis down, replicas not confirming: ask again later
            say.warning(f"lease {self.what}", "%s: the lease was not taken: %s", self.what, exc)
            return f"nobody confirmed ({exc})"
        if self.epoch:
            self.renewed_at = sent
            return ""
        return holder or "another serve"

    async def keep(self) -> None:
        """Renew the lease until this process may no longer act; then raise ``LeaseLost``
        at once. Never returns otherwise."""
        failed = False
        while True:
            now = self.monotonic()
            self._check(now)
            await asyncio.sleep(max(0.0, next_renew(self.terms, self.renewed_at, now, failed)
                                    - now))
            sent = self.monotonic()
            self._check(sent)
            failed = not await self._renew(sent)

    def _check(self, now: float) -> None:
        if not may_act(self.terms, self.renewed_at, now):
            raise LeaseLost(f"{self.what}: the lease was not renewed within "
                            f"{self.terms.ttl - self.terms.margin:g} s; stopping")

    async def _renew(self, sent: float) -> bool:
        """One renew, bounded by the deadline: True when confirmed, False to try again soon;
        ``LeaseLost`` when the lease is gone or another process holds it."""
        left = deadline(self.terms, self.renewed_at) - sent
        try:
            held = await asyncio.wait_for(self.lease.renew(self.token, self.terms.ttl_ms), left)
        except TimeoutError:
            return False  # the deadline has passed: the next _check stops
        except AcdError as exc:
            say.warning(f"renew {self.what}", "%s: the lease was not renewed: %s", self.what,
                        exc)
            return False
        if not held:
            raise LeaseLost(f"{self.what}: the lease is gone or another serve holds it; "
                            "stopping")
        self.renewed_at = sent
        return True

    async def release(self) -> None:
        """Give the lease up (after this process stopped acting): a standby takes over at
        its next poll instead of after the lease's expiry."""
        with contextlib.suppress(AcdError):
            if await self.lease.release(self.token):
                log.info("%s: lease released", self.what)


class NoLease:
    """A serve alone on its node: active at once, never fenced, nothing to give up."""

    async def acquire(self, stop: asyncio.Event) -> bool:
        del stop
        return True

    async def keep(self) -> None:
        await asyncio.Event().wait()  # never lost

    async def release(self) -> None:
        return None
