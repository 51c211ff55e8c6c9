"""The audit trail: every state change, in the pool's stream and in one stream per entity.

The Lua scripts write the entries of the state changes they make (same step, same order);
``Audit.append`` is for what happens around them (a dial attempt, a recording fetched). An
entry holds ``ts`` (epoch seconds), ``event``, ``kind`` (``task`` or ``agent``), ``entity``
and the event's own fields; state changes add ``from`` and ``to``. An entry is stored as one
JSON field ``e``, the same text in both streams: the pool's stream (``Keys.kpi``) is the
whole trail in execution order and what the KPIs read (store/kpis.py); the entity's stream
is its story. Entries written before this format, one stream field per entry field, still
read the same. Both streams are trimmed with ``MAXLEN ~`` so they stay bounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis

from acdkit.ports import Clock, SystemClock
from acdkit.store.codec import encode_float
from acdkit.store.connection import guarded
from acdkit.store.keys import Keys

Kind = Literal["task", "agent"]

GLOBAL_MAXLEN = 100_000
ENTITY_MAXLEN = 1_000
_HEAD = ("ts", "event", "kind", "entity")


@dataclass(frozen=True)
class AuditEntry:
    id: str  # the stream entry id: entries of the pool's stream are in execution order
    ts: float
    event: str
    kind: str
    entity: str
    fields: Mapping[str, str]

    @classmethod
    def parse(cls, entry_id: str, raw: Mapping[str, str]) -> AuditEntry:
        """A stream entry as read: one JSON field ``e``, or (older) one field per field."""
        packed = raw.get("e")
        if packed is not None and len(raw) == 1:
            decoded = json.loads(packed)
            raw = {str(k): v if isinstance(v, str) else str(v) for k, v in decoded.items()}
        rest = {k: v for k, v in raw.items() if k not in _HEAD}
        return cls(entry_id, float(raw.get("ts", "0") or 0), raw.get("event", ""),
                   raw.get("kind", ""), raw.get("entity", ""), rest)


def _entries(raw: Any) -> list[AuditEntry]:
    return [AuditEntry.parse(entry_id, fields) for entry_id, fields in raw or []]


class Audit:
    """Read and append the audit streams of one pool."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, clock: Clock | None = None, *,
                 maxlen: int = GLOBAL_MAXLEN, entity_maxlen: int = ENTITY_MAXLEN) -> None:
        self.redis = redis
        self.keys = keys
        self.clock = clock or SystemClock()
        self.maxlen = maxlen
        self.entity_maxlen = entity_maxlen

    @guarded
    async def append(self, entity_id: str, event: str, *, kind: Kind = "task",
                     now: float | None = None, **fields: str) -> None:
        """Append ``event`` with ``fields`` to the pool's stream and to the entity's stream."""
        ts = self.clock.now() if now is None else now
        entry = {"e": json.dumps({"ts": encode_float(ts), "event": event, "kind": kind,
                                  "entity": entity_id, **fields})}
        own = self.keys.audit_of(kind, entity_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.keys.kpi, entry, maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.xadd(own, entry, maxlen=self.entity_maxlen, approximate=True)  # type: ignore[arg-type]
        pipe.publish(self.keys.changes, f"{kind} {entity_id} {event}")
        await pipe.execute()

    @guarded
    async def history(self, entity_id: str, kind: Kind = "task") -> list[AuditEntry]:
        """The whole story of one task (or agent), oldest first."""
        return _entries(await self.redis.xrange(self.keys.audit_of(kind, entity_id)))

    @guarded
    async def latest(self, entity_id: str, kind: Kind = "task",
                     count: int = 1) -> list[AuditEntry]:
        """The newest ``count`` entries of one task's (or agent's) story, newest first."""
        return _entries(await self.redis.xrevrange(self.keys.audit_of(kind, entity_id),
                                                   count=count))

    @guarded
    async def tail(self, count: int = 50) -> list[AuditEntry]:
        """The last ``count`` entries of the pool's stream, oldest first."""
        return _entries(await self.redis.xrevrange(self.keys.kpi, count=count))[::-1]

    @guarded
    async def since(self, after: str = "-", count: int = 10_000) -> list[AuditEntry]:
        """Up to ``count`` entries of the pool's stream after the entry id ``after`` (``-``:
        from the start)."""
        start = "-" if after == "-" else f"({after}"
        return _entries(await self.redis.xrange(self.keys.kpi, min=start, count=count))
