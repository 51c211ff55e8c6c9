"""What the repositories of the pool share: the client, key names, scripts, audit, clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import redis.asyncio as aioredis

from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.routing import PriorityRules
from acdkit.core.tasks import Task, TaskEvent
from acdkit.ports import Clock, SystemClock
from acdkit.store.audit import ENTITY_MAXLEN, GLOBAL_MAXLEN, Audit
from acdkit.store.codec import encode_float
from acdkit.store.durability import Acks, Durability
from acdkit.store.keys import Keys
from acdkit.store.quarantine import Quarantine
from acdkit.store.scripts import Scripts

ATTEMPTS = 3  # re-reads after a lost compare-and-set before giving up with ClaimLost


class Conflict(Exception):
    """A compare-and-set lost: re-read and decide again."""


@dataclass(frozen=True)
class TaskMove:
    """A task's move, as ``Pool.move_task`` takes it; ``known``: the caller's copy."""

    task_id: str
    event: TaskEvent
    known: Task | None = None
    due_at: float | None = None
    outcome: str = ""
    expect_agent: str | None = None


@dataclass(frozen=True)
class AgentMove:
    """An agent's move, as ``AgentRepository.move_agent`` takes it; ``known``: the caller's
    copy."""

    agent_id: str
    event: AgentEvent
    known: Agent | None = None
    expect_task: str | None = None
    max_misses: int = 3
    reason: str = ""


class Record(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=Record)


async def copies(record_id: str, known: R | None,
                 read: Callable[[str], Awaitable[dict[str, str]]],
                 encode: Callable[[R], dict[str, str]],
                 decode: Callable[[dict[str, str]], R],
                 ) -> AsyncIterator[tuple[dict[str, str], R, bool]]:
    """The versions of a record a move may start from, as (hash, record, from the caller):
    first ``known``, the copy the caller holds (no read), then up to ``ATTEMPTS`` fresh reads.
    A move whose compare-and-set or core rules refuse the caller's copy goes on to the next;
    one that a fresh read refuses is refused."""
    if (mine := own_copy(known, record_id)) is not None:
        yield encode(mine), mine, True
    for _ in range(ATTEMPTS):
        raw = await read(record_id)
        yield raw, decode(raw), False


def own_copy(known: R | None, record_id: str) -> R | None:
    """``known`` if it is a copy of record ``record_id``: a copy of another record is never
    used."""
    return known if known is not None and known.id == record_id else None


def flat(pairs: dict[str, str]) -> list[str]:
    return [item for pair in pairs.items() for item in pair]


def joined(states: Iterable[str]) -> str:
    return ",".join(states)


class PoolBase:
    """The connection, key names, scripts and audit that every repository of the pool shares."""

    def __init__(self, redis: aioredis.Redis, rules: PriorityRules, *, prefix: str = "acdkit",
                 keys: Keys | None = None, clock: Clock | None = None,
                 audit_maxlen: int = GLOBAL_MAXLEN,
                 entity_audit_maxlen: int = ENTITY_MAXLEN, acks: Acks | None = None) -> None:
        self.redis = redis
        self.rules = rules
        self.keys = keys or Keys(prefix)
        self.clock = clock or SystemClock()
        self.scripts = Scripts.register(redis)
        self.quarantine = Quarantine(redis, self.keys)  # records that cannot be read
        self.audit = Audit(redis, self.keys, self.clock, maxlen=audit_maxlen,
                           entity_maxlen=entity_audit_maxlen)
        # Replicas confirm claims, bookings and dial locks (store/durability.py).
        self.durability = Durability(redis, self.keys.fence, acks or Acks())

    async def close(self) -> None:
        """Close the Redis client (its connections)."""
        await self.redis.aclose()

    def _argv(self, now: float, *rest: str) -> list[str]:
        audit = self.audit
        return [self.keys.base, str(audit.maxlen), str(audit.entity_maxlen), encode_float(now),
                *rest]
