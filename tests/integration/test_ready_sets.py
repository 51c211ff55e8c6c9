"""Random sequences of pool operations against real Redis never let the indexes disagree with
the hashes: ready sets, skill queues, the lines of tasks held for their preferred agent, the
due set and who holds what (hypothesis, stateful)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from poolkit import RULES, StepClock

from acdkit.core.agents import Agent, AgentEvent, AgentState
from acdkit.core.errors import ClaimLost, InvalidTransition
from acdkit.core.tasks import TERMINAL_STATES, Task, TaskEvent, TaskKind, TaskState
from acdkit.dispatch import Dispatcher
from acdkit.store.connection import connect
from acdkit.store.keys import Keys
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration

T = TypeVar("T")
AGENTS = ("a0", "a1", "a2", "a3")
SKILLS = ("s0", "s1", "s2")
REFUSED = (InvalidTransition, ClaimLost)
HOLDING = {AgentState.RESERVED, AgentState.ON_CALL}

agents = st.sampled_from(AGENTS)
skill_maps = st.dictionaries(st.sampled_from(SKILLS), st.integers(3, 9), max_size=3)
agent_events = st.sampled_from([e for e in AgentEvent if e is not AgentEvent.RESERVE])
task_events = st.sampled_from(
    [e for e in TaskEvent if e not in (TaskEvent.RESERVE, TaskEvent.RELEASE)])
preferred_agents = st.sampled_from([None, "a0", "a1", "away"])
next_states = st.sampled_from(
    [AgentState.READY, AgentState.WRAP_UP, AgentState.PAUSED, AgentState.LOGGED_OUT])


async def _noop(agent: Agent, task: Task) -> None:
    del agent, task


class PoolMachine(RuleBasedStateMachine):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.raw = redis.Redis.from_url(url, decode_responses=True)
        self.raw.flushdb()
        self.clock = StepClock()
        self.pool = self.run(self._open(url))
        self.keys = Keys()
        self.tasks: list[str] = []

    async def _open(self, url: str) -> Pool:
        return Pool(await connect(url), RULES, clock=self.clock)

    @property
    def now(self) -> float:
        return self.clock.now()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        self.clock.advance(1)
        return self.loop.run_until_complete(work)

    def attempt(self, work: Coroutine[Any, Any, object]) -> None:
        with contextlib.suppress(*REFUSED):
            self.run(work)

    def teardown(self) -> None:
        self.run(self.pool.close())
        self.loop.close()
        self.raw.flushdb()
        self.raw.close()

    # -- operations --------------------------------------------------------------------------

    @initialize(skills=st.lists(skill_maps, min_size=len(AGENTS), max_size=len(AGENTS)),
                levels=st.lists(st.integers(1, 5), min_size=3, max_size=3))
    def staff_and_work(self, skills: list[dict[str, int]], levels: list[int]) -> None:
        for agent_id, agent_skills in zip(AGENTS, skills, strict=True):
            self.save_agent(agent_id, agent_skills)
            self.login(agent_id)
        for i, level in enumerate(levels):
            self.add_task(SKILLS[i], 0, level, later=False)

    @rule(agent_id=agents)
    def login(self, agent_id: str) -> None:
        self.attempt(self.pool.move_agent(agent_id, AgentEvent.LOGIN, self.now,
                                          reach=f"PJSIP/{agent_id}"))

    @rule(skill=st.sampled_from(SKILLS), priority=st.integers(-5, 5), level=st.integers(1, 5),
          later=st.booleans(), preferred=preferred_agents, wait=st.integers(1, 6))
    def add_task(self, skill: str, priority: int, level: int, later: bool,
                 preferred: str | None = None, wait: int = 1) -> None:
        task_id = f"t{len(self.tasks)}"
        state = TaskState.SCHEDULED if later else TaskState.QUEUED
        self.run(self.pool.add_task(Task(
            id=task_id, kind=TaskKind.CALLBACK, skill=skill, created_at=self.now,
            enqueued_at=self.now, priority=priority, min_level=level, state=state,
            due_at=self.now + 5 if later else None, preferred_agent=preferred,
            preferred_until=self.now + wait if preferred else None)))
        self.tasks.append(task_id)

    @rule(agent_id=agents, skills=skill_maps)
    def save_agent(self, agent_id: str, skills: dict[str, int]) -> None:
        self.run(self.pool.save_agent(Agent(id=agent_id, skills=skills), self.now))

    @rule(agent_id=agents, event=agent_events)
    def move_agent(self, agent_id: str, event: AgentEvent) -> None:
        self.attempt(self.pool.move_agent(agent_id, event, self.now,
                                          reach=f"PJSIP/{agent_id}", max_misses=2))

    @rule(agent_id=agents, data=st.data())
    def claim(self, agent_id: str, data: st.DataObject) -> None:
        if self.tasks:
            task_id = data.draw(st.sampled_from(self.tasks))
            self.run(self.pool.try_claim(agent_id, task_id, self.now))

    @rule(agent_id=agents)
    def dispatch(self, agent_id: str) -> None:
        dispatcher = Dispatcher(self.pool, RULES, self.clock, _noop)
        self.run(dispatcher.dispatch_agent(agent_id))
        self.run(dispatcher.wait_idle())

    @rule(data=st.data(), next_state=next_states, missed=st.booleans())
    def release(self, data: st.DataObject, next_state: AgentState, missed: bool) -> None:
        if self.tasks:
            task_id = data.draw(st.sampled_from(self.tasks))
            self.attempt(self.pool.release(task_id, next_state, self.now, missed=missed))

    @rule(agent_id=agents, next_state=next_states, missed=st.booleans())
    def release_held(self, agent_id: str, next_state: AgentState, missed: bool) -> None:
        task_id = self.raw.hget(self.keys.agent(agent_id), "task_id")
        if task_id:
            self.attempt(self.pool.release(str(task_id), next_state, self.now, missed=missed))

    @rule(data=st.data(), event=task_events)
    def move_task(self, data: st.DataObject, event: TaskEvent) -> None:
        if self.tasks:
            task_id = data.draw(st.sampled_from(self.tasks))
            self.attempt(self.pool.move_task(task_id, event, self.now, due_at=self.now + 3))

    @rule(data=st.data(), skill=st.sampled_from(SKILLS), priority=st.integers(-5, 5),
          preferred=preferred_agents, wait=st.integers(1, 6))
    def update_task(self, data: st.DataObject, skill: str, priority: int,
                    preferred: str | None, wait: int) -> None:
        if self.tasks:
            task_id = data.draw(st.sampled_from(self.tasks))
            self.run(self.pool.update_task(
                task_id, self.now, skill=skill, priority=priority, preferred_agent=preferred,
                preferred_until=self.now + wait if preferred else None))

    @rule(data=st.data())
    def dispatch_task(self, data: st.DataObject) -> None:
        if self.tasks:
            dispatcher = Dispatcher(self.pool, RULES, self.clock, _noop)
            self.run(dispatcher.dispatch_task(data.draw(st.sampled_from(self.tasks))))
            self.run(dispatcher.wait_idle())

    @rule()
    def promote_due(self) -> None:
        self.run(self.pool.promote_due(self.now))

    # -- what must always hold ---------------------------------------------------------------

    @invariant()
    def ready_sets_match_agent_hashes(self) -> None:
        agents = {a: self.raw.hgetall(self.keys.agent(a)) for a in self.raw.smembers(
            self.keys.agents)}
        for skill in SKILLS:
            expected = {a for a, h in agents.items()
                        if h["state"] == AgentState.READY and skill in json.loads(h["skills"])}
            assert self.raw.smembers(self.keys.ready(skill)) == expected, skill

    @invariant()
    def queues_match_task_hashes(self) -> None:
        """A queued task stands in its skill queue or, while it waits for its preferred agent,
        in its held lines (the skill's, its agent's, the end times): one or the other."""
        for task_id in self.tasks:
            h = self.raw.hgetall(self.keys.task(task_id))
            agent, until = h["preferred_agent"], h["preferred_until"]
            held_end = self.raw.zscore(self.keys.held_end, task_id)
            for skill in SKILLS:
                queued = h["state"] == TaskState.QUEUED and h["skill"] == skill
                score = self.raw.zscore(self.keys.queue(skill), task_id)
                held = self.raw.zscore(self.keys.queue_held(skill), task_id)
                assert (score is not None or held is not None) == queued, (task_id, skill, h)
                assert score is None or held is None, (task_id, "in both lines")
                assert score is None or score == float(h["score"])
                assert held is None or held == float(h["score"])
                if queued and agent and float(until) > self.now:
                    assert held is not None, (task_id, "waits for its agent in the queue")
                if held is not None:
                    assert held_end == float(until), (task_id, h)
                    assert self.raw.zscore(self.keys.held_for(agent), task_id) == held
                assert (self.raw.zscore(self.keys.queue_age(skill), task_id) is not None) == queued
            if held_end is not None:
                assert h["state"] == TaskState.QUEUED and agent, (task_id, h)
        for agent_id in (*AGENTS, "away"):
            for task_id in self.raw.zrange(self.keys.held_for(agent_id), 0, -1):
                h = self.raw.hgetall(self.keys.task(task_id))
                assert h["state"] == TaskState.QUEUED and h["preferred_agent"] == agent_id
            due = self.raw.zscore(self.keys.due, task_id)
            assert (due is not None) == (h["state"] == TaskState.SCHEDULED)
            assert due is None or due == float(h["due_at"])

    @invariant()
    def a_task_and_an_agent_hold_each_other(self) -> None:
        held: dict[str, str] = {}
        for agent_id in self.raw.smembers(self.keys.agents):
            h = self.raw.hgetall(self.keys.agent(agent_id))
            assert bool(h["task_id"]) == (h["state"] in HOLDING), (agent_id, h)
            if h["task_id"]:
                assert h["task_id"] not in held, "two agents hold one task"
                held[h["task_id"]] = agent_id
        for task_id in self.tasks:
            h = self.raw.hgetall(self.keys.task(task_id))
            if h["state"] == TaskState.RESERVED:
                assert held.get(task_id) == h["agent_id"] != "", (task_id, h)
            if task_id in held and h["state"] not in TERMINAL_STATES:
                assert h["state"] in (TaskState.RESERVED, TaskState.ACTIVE)
                assert h["agent_id"] == held[task_id]


def test_indexes_never_disagree_with_hashes(redis_url: str) -> None:
    run_state_machine_as_test(
        lambda: PoolMachine(redis_url),
        settings=settings(max_examples=60, stateful_step_count=30, deadline=None))
