"""The claim that joins an agent and a task: reserve, and release.

Three claims, each one Lua script, each atomic:

- ``try_claim(agent, task)``: this agent for this task, when both are still free;
- ``claim_next(agents)``: for each of several ready agents in turn, the best task it may take
  (the dispatcher's claim, one round trip for all of them: ``claim_next.lua``);
- ``claim_for_task(task)``: the agent ready longest that may take a new task
  (``claim_for_task.lua``).

The last two choose inside Redis, by the routing rule of ``core/routing.py`` carried in
``lua/_routing.lua`` (a test keeps the two in step). Choosing where the data is makes a claim
one round trip instead of a read, a choice in Python and a claim that may lose a race.
A record a script cannot read is set aside (``store/quarantine.py``) and skipped.

With ``redis.min_replicas_ack`` a reservation is returned only once replicas hold it; else it
is released (agent ready, task back in line) and ``NotDurable`` raised, so no agent is rung on
a claim a failover could forget (docs/redis-ha.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from acdkit.core.agents import Agent, AgentState
from acdkit.core.errors import AcdError, InvalidInput, InvalidTransition, NoSuchTask, NotDurable
from acdkit.core.tasks import Task, TaskEvent, TaskState
from acdkit.store.agents import AgentRepository
from acdkit.store.base import joined
from acdkit.store.codec import agent_from_hash, task_from_hash
from acdkit.store.connection import guarded
from acdkit.store.scripts import ClaimResult

HOLDING = (TaskState.RESERVED, TaskState.ACTIVE)
_AGENT_AFTER_RELEASE = frozenset(
    {AgentState.READY, AgentState.WRAP_UP, AgentState.PAUSED, AgentState.LOGGED_OUT})


@dataclass(frozen=True)
class Claimed:
    """A reservation as the script wrote it: the agent and the task it now holds."""

    agent: Agent
    task: Task


@dataclass(frozen=True)
class Round:
    """What one ``claim_next`` or ``claim_for_task`` did."""

    claimed: tuple[Claimed, ...] = ()
    # task id -> when it stops waiting for its preferred agent: tasks it skipped for that
    wake_at: Mapping[str, float] = field(default_factory=dict)


def _pairs(flat: list[str]) -> dict[str, str]:
    """A flat reply [name, value, ...] (HGETALL's) as a dict."""
    items = iter(flat)
    return dict(zip(items, items, strict=True))


def _times(flat: list[str]) -> dict[str, float]:
    return {task_id: float(at) for task_id, at in _pairs(flat).items()}


class ClaimRepository(AgentRepository):
    """Reserve and release; ``Pool`` adds the tasks."""

    @guarded
    async def try_claim(self, agent_id: str, task_id: str, now: float) -> ClaimResult:
        """Reserve ``agent_id`` for ``task_id`` atomically; say why not when it did not."""
        result = ClaimResult(await self.scripts.claim(
            keys=[self.keys.agent(agent_id), self.keys.task(task_id)],
            args=self._argv(now, agent_id, task_id)))
        if result is ClaimResult.OK and self.durability.enabled:
            await self._confirm([task_id], now)
        return result

    async def claim(self, agent_id: str, task_id: str, now: float) -> bool:
        """True when the agent is now reserved for the task (it was ready, the task queued)."""
        return await self.try_claim(agent_id, task_id, now) is ClaimResult.OK

    @guarded
    async def claim_next(self, agent_ids: Sequence[str], now: float, *, page: int = 4,
                         depth: int = 500, node: str = "") -> Round:
        """For each agent in ``agent_ids`` in turn (the first served first), reserve the best
        task it may take now, reading each skill queue ``page`` tasks at a time and no deeper
        than rank ``depth``. Agents that are not ready, or may take nothing, get nothing. A
        live caller waiting on another node than ``node`` is left to that node's claims
        (core/routing.py ``claimable_on``)."""
        for agent_id in agent_ids:
            self.keys.agent(agent_id)
        if not agent_ids:
            return Round()
        results, bad, wake = await self.scripts.claim_next(
            keys=[self.keys.tasks],
            args=self._argv(now, str(page), str(depth), node, *agent_ids))
        await self._set_aside("task", bad, now)
        claimed: list[Claimed] = []
        for entry in results:
            if entry[1] == "ok":
                held = await self._held(_pairs(entry[2]), _pairs(entry[3]), now)
                claimed += [held] if held else []
            elif entry[1] == "bad":
                await self._set_aside("agent", [entry[0]], now)
        return await self._round(claimed, _times(wake), now)

    @guarded
    async def claim_for_task(self, task_id: str, now: float, *, node: str = "") -> Round:
        """Reserve the agent ready longest among those that may take ``task_id`` now (none
        when it is a live caller waiting on another node than ``node``)."""
        status, raw_agent, raw_task, bad, wake = await self.scripts.claim_for_task(
            keys=[self.keys.task(task_id)], args=self._argv(now, task_id, node))
        await self._set_aside("agent", bad, now)
        if status == "bad":
            await self._set_aside("task", [task_id], now)
        held = (await self._held(_pairs(raw_agent), _pairs(raw_task), now)
                if status == "ok" else None)
        return await self._round([held] if held else [], _times(wake), now)

    async def _round(self, claimed: list[Claimed], wake: dict[str, float],
                     now: float) -> Round:
        if claimed and self.durability.enabled:
            await self._confirm([c.task.id for c in claimed], now)
        return Round(tuple(claimed), wake)

    async def _set_aside(self, kind: str, record_ids: list[str], now: float) -> None:
        """Quarantine the records a script could not read, with the codec's reason."""
        decode = task_from_hash if kind == "task" else agent_from_hash
        for record_id in record_ids:
            key = self.keys.task(record_id) if kind == "task" else self.keys.agent(record_id)
            raw = cast(dict[str, str], await self.redis.hgetall(key))
            if await self.quarantine.decoded(kind, record_id, raw, decode, now) is not None:
                await self.quarantine.add(kind, record_id, "routing cannot read it", now)

    async def _held(self, raw_agent: Mapping[str, str], raw_task: Mapping[str, str],
                    now: float) -> Claimed | None:
        """The reservation decoded. One the codec refuses is undone and the record set aside:
        a bad task goes back (then out of its queue) and its agent stays ready; a bad agent
        is paused."""
        task_id, agent_id = str(raw_task.get("id", "")), str(raw_agent.get("id", ""))
        try:
            agent = agent_from_hash(raw_agent)
        except InvalidInput as err:
            await self._undo(task_id, AgentState.PAUSED, now)
            await self.quarantine.add("agent", agent_id, str(err), now)
            return None
        try:
            return Claimed(agent, task_from_hash(raw_task))
        except InvalidInput as err:
            await self._undo(task_id, AgentState.READY, now)
            await self.quarantine.add("task", task_id, str(err), now)
            return None

    async def _undo(self, task_id: str, agent_next: AgentState, now: float) -> None:
        with contextlib.suppress(AcdError):
            await self.release(task_id, agent_next, now, reason="unreadable",
                               from_states=(TaskState.RESERVED,))

    async def _confirm(self, task_ids: list[str], now: float) -> None:
        try:
            await self.durability.confirm()
        except NotDurable:
            for task_id in task_ids:  # the reservation's own lifetime ends it otherwise
                with contextlib.suppress(AcdError):
                    await self.release(task_id, AgentState.READY, now, reason="not_durable",
                                       from_states=(TaskState.RESERVED,))
            raise

    @guarded
    async def release(self, task_id: str, agent_next_state: AgentState, now: float, *,
                      reason: str = "", missed: bool = False,
                      from_states: Sequence[TaskState] = HOLDING) -> None:
        """Send a held task back to its queue with its original score, atomically moving the
        agent that holds it to ``agent_next_state`` (``missed`` counts a missed offer).

        Raises ``NoSuchTask``, or ``InvalidTransition`` when the task is not in ``from_states``.
        """
        if agent_next_state not in _AGENT_AFTER_RELEASE:
            raise InvalidInput(f"an agent cannot go to {agent_next_state!r} on a release")
        status = cast(str, await self.scripts.release(
            keys=[self.keys.task(task_id)],
            args=self._argv(now, task_id, agent_next_state, reason, "1" if missed else "0",
                            joined(from_states))))
        if status == "missing":
            raise NoSuchTask(f"no task {task_id!r}")
        if status != "ok":
            raise InvalidTransition("task", status.partition(":")[2], TaskEvent.RELEASE)
