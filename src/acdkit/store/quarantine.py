"""Records that cannot be read are set aside, not fatal: the quarantine.

A task or agent hash that the codec refuses (a missing field, a bad number, JSON that is not
an object; written by hand, by an older or newer acdkit, or by someone with write access to
Redis) would otherwise stop whoever reads it: one bad agent stopped every sweep. Here the
record is listed in one hash with the reason, taken out of the sets the dispatcher reads
(skill queues, the due set, ready sets), and left where it is for an admin to look at:
``acdkit doctor`` lists the quarantine (docs/security.md). Nothing is deleted.

    acdkit:{pool}:quarantine   hash   "<kind>:<id>" -> JSON {"reason": ..., "at": ...}
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from acdkit.core.errors import InvalidInput
from acdkit.limits import RateLimitedLog
from acdkit.store.keys import Keys

log = logging.getLogger(__name__)
say = RateLimitedLog(log)
T = TypeVar("T")
KINDS = ("task", "agent")
_KEYABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # as keys.check_id: a skill name in a key
MAX_ENTRIES = 10_000  # a flood of bad records lists this many; the log says the rest


@dataclass(frozen=True)
class Quarantined:
    kind: str  # task | agent
    record_id: str
    reason: str
    at: float


class Quarantine:
    """The quarantine of one pool."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.key = f"{keys.base}quarantine"

    async def add(self, kind: str, record_id: str, reason: str, now: float) -> None:
        """Set ``kind:record_id`` aside for ``reason`` (idempotent)."""
        say.warning(f"quarantine {kind}", "%s %r quarantined: %s", kind, record_id, reason)
        skills = await self._skills()
        pipe = self.redis.pipeline(transaction=False)
        if await self.redis.hlen(self.key) < MAX_ENTRIES:
            pipe.hset(self.key, f"{kind}:{record_id}",
                      json.dumps({"reason": reason[:500], "at": now}))
        if kind == "task":
            self._unindex(pipe, record_id, skills)
        else:
            for skill in sorted(skills):
                pipe.srem(self.keys.ready(skill), record_id)
        await pipe.execute()

    async def unindexed(self, task_id: str) -> None:
        """Take a task that cannot be read (or whose hash is gone) out of every index."""
        pipe = self.redis.pipeline(transaction=False)
        self._unindex(pipe, task_id, await self._skills())
        await pipe.execute()

    async def _skills(self) -> list[str]:
        """The pool's skills whose names can be part of a key (a bad one is skipped)."""
        return [s for s in cast(set[str], await self.redis.smembers(self.keys.skills))
                if _KEYABLE.fullmatch(s)]

    def _unindex(self, pipe: Pipeline, task_id: str, skills: list[str]) -> None:
        pipe.zrem(self.keys.due, task_id)
        pipe.zrem(self.keys.held_end, task_id)  # (its agent's line drops it at a claim)
        for skill in sorted(skills):
            for key in (*self.keys.lines(skill), self.keys.queue_age(skill)):
                pipe.zrem(key, task_id)
        # The waiting counts cannot say what it was: they are counted again at the next read.
        pipe.hdel(self.keys.counts, "built")

    async def entries(self) -> list[Quarantined]:
        """Every quarantined record, by kind and id."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.key))
        found = []
        for name, value in sorted(raw.items()):
            kind, _, record_id = name.partition(":")
            try:
                data = json.loads(value)
                found.append(Quarantined(kind, record_id, str(data["reason"]),
                                         float(data["at"])))
            except (ValueError, KeyError, TypeError):
                found.append(Quarantined(kind, record_id, "unreadable entry", 0.0))
        return found

    async def decoded(self, kind: str, record_id: str, raw: Mapping[str, str],
                      decode: Callable[[Mapping[str, str]], T], now: float) -> T | None:
        """``decode(raw)``, or None once the record is quarantined because it cannot be."""
        try:
            return decode(raw)
        except InvalidInput as err:
            await self.add(kind, record_id, str(err), now)
            return None
