"""The Lua scripts that make every state change of the pool atomic.

Each script is ``lua/_lib.lua`` followed by its own file. Every state change of a task or an
agent goes through one of them, so the skill queues, the due set and the ready sets can never
disagree with the hashes, and every change is audited in the same step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

# Scripts that choose as they claim also carry the routing rule (lua/_routing.lua).
ROUTING = frozenset({"claim_next", "claim_for_task"})


def source(name: str) -> str:
    """The full text of script ``name`` (without ``.lua``), library included."""
    lua = files("acdkit.store").joinpath("lua")
    parts = ["_lib", *(["_routing"] if name in ROUTING else []), name]
    return "\n".join(lua.joinpath(f"{part}.lua").read_text() for part in parts)


class ClaimResult(StrEnum):
    """What ``claim.lua`` answered."""

    OK = "ok"
    MISSING = "missing"  # the agent or the task does not exist
    AGENT_BUSY = "agent_busy"  # the agent is no longer ready: stop trying with it
    TASK_TAKEN = "task_taken"  # the task is no longer queued: try the next one
    INELIGIBLE = "ineligible"  # the agent lacks the task's skill level (its skills changed)


class Script(AsyncScript):
    """redis-py's script object, called on its own client without the pipeline and cluster
    checks redis-py makes at every call (6 of its 28 µs of client CPU, docs/benchmarks.md);
    with ``client`` (a pipeline), redis-py's own call. acdkit's client registers every script
    as one (store/multiplex.py ``MultiplexedRedis.register_script``)."""

    async def __call__(self, keys: Sequence[Any] | None = None,
                       args: Iterable[Any] | None = None, client: Any = None) -> Any:
        if client is not None:
            return await super().__call__(keys, args, client)
        keys, args = keys or (), args or ()
        redis = self.registered_client
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restart or a failover: Redis lost it, and it did not run
            self.sha = await redis.script_load(self.script)
            return await redis.evalsha(self.sha, len(keys), *keys, *args)


@dataclass(frozen=True)
class Scripts:
    """The registered scripts of one client (redis-py loads them on first use)."""

    claim: AsyncScript
    claim_next: AsyncScript  # the best task for each of several agents
    claim_for_task: AsyncScript  # the longest-ready agent for a task
    release: AsyncScript
    agent_state: AsyncScript
    task_state: AsyncScript
    peek: AsyncScript  # read only
    ready: AsyncScript  # read only
    position: AsyncScript  # read only
    counts: AsyncScript  # the waiting tasks counted again from the indexes

    @classmethod
    def register(cls, redis: aioredis.Redis) -> Scripts:
        return cls(**{name: redis.register_script(source(name))
                      for name in ("claim", "claim_next", "claim_for_task", "release",
                                   "agent_state", "task_state", "peek", "ready", "position",
                                   "counts")})
