"""How a task and its agent end in serve: the moves in the pool (a move the state no longer
takes is logged, not raised) and the end of the agent's wrap-up, scheduled here (the
housekeeping sweep of bootstrap.py catches it if serve dies first)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from acdkit.ari.spawner import Spawner
from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.errors import AcdError, InvalidTransition, NotFound
from acdkit.core.tasks import Task, TaskEvent
from acdkit.ports import Clock
from acdkit.store.base import AgentMove, TaskMove
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endings:
    pool: Pool
    clock: Clock
    spawner: Spawner
    wrap_up: float  # seconds (agents.wrap_up)
    max_misses: int  # agents.max_misses

    def after_wrap_up(self, agent_id: str, known: Agent | None = None) -> None:
        """Schedule the end of an agent's wrap-up (``known``: the agent as it went into it)."""

        async def wrapped() -> None:
            await asyncio.sleep(self.wrap_up)
            try:
                await self.pool.move_agent(agent_id, AgentEvent.WRAPPED, self.clock.now(),
                                           known=known)
            except AcdError as exc:
                log.info("agent %s: wrap-up end not applied: %s", agent_id, exc)

        self.spawner.spawn(wrapped(), f"wrap-up {agent_id}")

    async def end(self, task_id: str, agent_id: str, event: TaskEvent, outcome: str, *,
                  task: Task | None = None, agent: Agent | None = None) -> None:
        """End ``task_id`` by ``event`` and send its agent to wrap-up; ``task`` and ``agent``:
        copies the caller holds, with which both moves take one round trip (store/pool.py
        ``move_together``). A move the state no longer takes is logged; the other is made."""
        moved, ended = await self.pool.move_together(
            [TaskMove(task_id, event, known=task, outcome=outcome),
             AgentMove(agent_id, AgentEvent.END, known=agent, max_misses=self.max_misses)],
            self.clock.now())
        if isinstance(moved, AcdError):
            log.info("task %s: %s not applied: %s", task_id, event, moved)
        if isinstance(ended, AcdError):
            log.info("agent %s: %s not applied: %s", agent_id, AgentEvent.END, ended)
        self.after_wrap_up(agent_id, ended if isinstance(ended, Agent) else None)

    async def move_task(self, task_id: str, event: TaskEvent, outcome: str, *,
                        known: Task | None = None) -> None:
        try:
            await self.pool.move_task(task_id, event, self.clock.now(), outcome=outcome,
                                      known=known)
        except (InvalidTransition, NotFound) as exc:
            log.info("task %s: %s not applied: %s", task_id, event, exc)

    async def move_agent(self, agent_id: str, event: AgentEvent, *,
                         known: Agent | None = None) -> Agent | None:
        try:
            return await self.pool.move_agent(agent_id, event, self.clock.now(),
                                              max_misses=self.max_misses, known=known)
        except (InvalidTransition, NotFound) as exc:
            log.info("agent %s: %s not applied: %s", agent_id, event, exc)
            return None
