"""What this process knows about the calls it holds: one ``Call`` per live task with a caller.

Redis holds the truth about tasks and agents; this is the in-memory side of a live call
(the channels and bridges that make it up), which only the process owning the channels has.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from acdkit.ari.session import Session
from acdkit.core.agents import Agent


@dataclass
class Call:
    task_id: str
    customer: Session
    taken: asyncio.Event = field(default_factory=asyncio.Event)  # an agent is being connected
    agent_id: str | None = None
    agent_leg: str | None = None  # the agent's channel while connected
    agent: Agent | None = None  # the agent as connected: its END move starts from this copy
    bridge_id: str | None = None  # the mixing bridge of the conversation


@dataclass
class AgentLine:
    """A persistent agent's call, waiting in its own bridge between tasks."""

    agent_id: str
    session: Session
    bridge_id: str
    retiring: bool = False  # hung up by us (mode switch), not by the agent: no logout


Lines = dict[str, AgentLine]  # the persistent agents' lines, by agent id


class Calls:
    def __init__(self) -> None:
        self._by_task: dict[str, Call] = {}

    def open(self, task_id: str, customer: Session) -> Call:
        call = Call(task_id, customer)
        self._by_task[task_id] = call
        return call

    def get(self, task_id: str) -> Call | None:
        return self._by_task.get(task_id)

    def close(self, task_id: str) -> None:
        self._by_task.pop(task_id, None)

    def __len__(self) -> int:
        return len(self._by_task)
