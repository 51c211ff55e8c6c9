"""Agents in Redis: profiles, and states moved only through ``agent_state.lua``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import cast

from acdkit.core.agents import Agent, AgentEvent, AgentMode, AgentState, validate_reach
from acdkit.core.agents import transition as agent_transition
from acdkit.core.errors import ClaimLost, InvalidInput, InvalidTransition, NoSuchAgent
from acdkit.store.base import ATTEMPTS, AgentMove, PoolBase, copies, flat
from acdkit.store.codec import AGENT_PROFILE, agent_from_hash, agent_to_hash, changed
from acdkit.store.connection import guarded


class AgentRepository(PoolBase):
    """The agents of one pool; ``Pool`` adds tasks and the claim."""

    # -- agents ----------------------------------------------------------------------------

    async def _agent_raw(self, agent_id: str) -> dict[str, str]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.agent(agent_id)))
        if not raw:
            raise NoSuchAgent(f"no agent {agent_id!r}")
        return raw

    async def _write_agent(self, agent_id: str, expected: str, holds: str, event: str,
                           now: float, pairs: dict[str, str]) -> str:
        return self._agent_written(agent_id, cast(str, await self.scripts.agent_state(
            keys=[self.keys.agent(agent_id)],
            args=self._argv(now, agent_id, expected, holds, event, *flat(pairs)))))

    @guarded
    async def save_agent(self, agent: Agent, now: float | None = None) -> Agent:
        """Create an agent (logged out) or update its profile (name, PIN hash, skills,
        attributes, reach, mode), never its state; return the stored agent.

        Raises ``InvalidInput`` for a bad id, skill name or reach.
        """
        for skill in agent.skills:
            self.keys.ready(skill)
        if agent.reach:
            validate_reach(agent.reach)
        now = self.clock.now() if now is None else now
        for _ in range(ATTEMPTS):
            new = replace(agent, state=AgentState.LOGGED_OUT, state_since=now, task_id=None)
            if await self._write_agent(agent.id, "", "", "create", now,
                                       agent_to_hash(new)) == "ok":
                return new
            raw = await self._agent_raw(agent.id)
            profile = {k: v for k, v in agent_to_hash(agent).items() if k in AGENT_PROFILE}
            if await self._write_agent(agent.id, "*", raw.get("task_id", ""), "save", now,
                                       changed(raw, profile)) == "ok":
                return agent_from_hash({**raw, **profile})
        raise ClaimLost(f"agent {agent.id!r} kept changing while being saved")

    @guarded
    async def get_agent(self, agent_id: str) -> Agent | None:
        """The agent ``agent_id``, or None when there is none."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.agent(agent_id)))
        return agent_from_hash(raw) if raw else None

    async def _load_agents(self, agent_ids: Iterable[str]) -> list[Agent]:
        ids = sorted(agent_ids)
        pipe = self.redis.pipeline(transaction=False)
        for agent_id in ids:
            pipe.hgetall(self.keys.agent(agent_id))
        return await self._agents(zip(ids, await pipe.execute(), strict=True))

    async def _agents(self, raws: Iterable[tuple[str, dict[str, str]]]) -> list[Agent]:
        """The agents that decode; the others go to the quarantine (store/quarantine.py)."""
        found = []
        for agent_id, raw in raws:
            if not raw:
                continue
            agent = await self.quarantine.decoded("agent", agent_id, raw, agent_from_hash,
                                                  self.clock.now())
            if agent is not None:
                found.append(agent)
        return found

    @guarded
    async def list_agents(self) -> list[Agent]:
        """Every agent, by id."""
        return await self._load_agents(cast(set[str], await self.redis.smembers(self.keys.agents)))

    @guarded
    async def ready_agents(self, skill: str) -> list[Agent]:
        """The ready agents having ``skill`` (from the ready set the scripts maintain)."""
        reply = await self.scripts.ready(keys=[self.keys.ready(skill)], args=self._argv(0.0))
        raws = [(str(raw.get("id", "?")), raw) for raw in json.loads(reply)]
        return sorted(await self._agents(raws), key=lambda a: a.id)

    @guarded
    async def move_agent(self, agent_id: str, event: AgentEvent, now: float, *,
                         expect_task: str | None = None, reach: str | None = None,
                         mode: AgentMode | None = None, max_misses: int = 3,
                         reason: str = "", known: Agent | None = None) -> Agent:
        """Apply ``event`` (core ``agents.transition`` rules) to the stored agent atomically.

        ``expect_task`` makes the change conditional on the agent still holding that task
        (``ClaimLost`` otherwise). An agent that lets go of a task still *reserved* for it
        (``LOGOUT``, ``NO_ANSWER``, ``END``) sends that task back to its queue with its place,
        in the same step; an *active* task stays for the caller to finish. ``RESERVE`` goes
        through ``claim``. ``known``: the agent as the caller holds it (from its claim),
        which saves reading it again; the compare-and-set on its state and held task still
        decides, and a change meanwhile sends the move back to a fresh read. Only fields the
        move itself changes are written, so a field changed meanwhile is never undone.
        Raises ``NoSuchAgent``, ``InvalidTransition``, ``ClaimLost``.
        """
        if event is AgentEvent.RESERVE:
            raise InvalidInput("agent event 'reserve' goes through claim()")
        move = AgentMove(agent_id, event, expect_task=expect_task, max_misses=max_misses,
                         reason=reason)
        async for raw, agent, guessed in copies(agent_id, known, self._agent_raw,
                                                agent_to_hash, agent_from_hash):
            try:
                new, keys, args = self._agent_write(move, raw, agent, now, reach=reach,
                                                    mode=mode)
            except (ClaimLost, InvalidTransition):
                if guessed:
                    continue  # the caller's copy was out of date: read the agent
                raise
            status = await self.scripts.agent_state(keys=keys, args=args)
            if self._agent_written(agent_id, status) == "ok":
                return new
        raise ClaimLost(f"agent {agent_id!r} kept changing while taking {event!r}")

    def _agent_write(self, move: AgentMove, raw: dict[str, str], agent: Agent, now: float, *,
                     reach: str | None = None, mode: AgentMode | None = None,
                     ) -> tuple[Agent, list[str], list[str]]:
        """The agent after ``move`` from ``agent`` (stored as ``raw``) and its script's keys
        and args; raises the core's refusal (``InvalidTransition``, ``ClaimLost``)."""
        if move.expect_task is not None and agent.task_id != move.expect_task:
            raise ClaimLost(f"agent {agent.id!r} does not hold task {move.expect_task!r}")
        new = agent_transition(agent, move.event, now, reach=reach, mode=mode,
                               max_misses=move.max_misses, reason=move.reason)
        return new, [self.keys.agent(agent.id)], self._argv(
            now, agent.id, agent.state, agent.task_id or "", move.event,
            *flat(changed(raw, agent_to_hash(new))))

    @staticmethod
    def _agent_written(agent_id: str, status: str) -> str:
        if status == "missing":
            raise NoSuchAgent(f"no agent {agent_id!r}")
        return status
