"""Routing: which agent may take a task, and which task comes first.

Priority is points. Points age: a task gains ``aging_per_minute`` points for each minute it
waits. Because every task ages at the same rate, the order of two tasks never changes with time,
so the pool can keep a *static* score per task (seconds of virtual enqueue time):

    score = enqueued_at - points * 60 / aging_per_minute        (lower is served first)

A point is worth ``60 / aging_per_minute`` seconds of waiting. An instant callback keeps the
caller's ``enqueued_at`` and therefore its place in line. With aging off, points dominate and
the enqueue time breaks ties.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from acdkit.core.agents import Agent, AgentState
from acdkit.core.rules import Rule
from acdkit.core.tasks import Task, TaskKind, TaskState

# A user's own rule: takes the task and the points computed so far, returns new points.
PriorityHook = Callable[[Task, float], float]

_NO_AGING_SECONDS_PER_POINT = 1e7  # ~4 months: points dominate, enqueue time breaks ties

_DEFAULT_BASE: Mapping[TaskKind, int] = MappingProxyType(
    {TaskKind.CALL: 50, TaskKind.CALLBACK: 50, TaskKind.VOICE_REQUEST: 20, TaskKind.OUTBOUND: 0}
)


@dataclass(frozen=True)
class PriorityRules:
    """Priority inputs from configuration; a weight of 0 disables its input."""

    base: Mapping[TaskKind, int] = field(default_factory=lambda: _DEFAULT_BASE)
    aging_per_minute: float = 1.0
    rating_weight: float = 0.0  # points per star of the customer's rating above 3
    preferred_agent_weight: float = 0.0  # points for a task that waits for a chosen agent
    vip_attribute: str = "vip"
    vip_weight: float = 0.0  # points when task.attributes[vip_attribute] is truthy
    hook: PriorityHook | None = None
    # Business rules (core/rules.py): applied to a task's own fields when it is added or
    # retried (store/outbound.py), so the score computed here already includes them.
    business: tuple[Rule, ...] = ()

    @property
    def seconds_per_point(self) -> float:
        if self.aging_per_minute <= 0:
            return _NO_AGING_SECONDS_PER_POINT
        return 60.0 / self.aging_per_minute


_TRUTHY = frozenset({"1", "true", "yes", "y", "on"})


def points(task: Task, rules: PriorityRules) -> float:
    """The task's priority points before aging: base per kind + explicit + weighted inputs."""
    total = float(rules.base.get(task.kind, 0) + task.priority)
    if task.customer_rating is not None:
        total += rules.rating_weight * (task.customer_rating - 3.0)
    if task.preferred_agent:
        total += rules.preferred_agent_weight
    if task.attributes.get(rules.vip_attribute, "").lower() in _TRUTHY:
        total += rules.vip_weight
    if rules.hook is not None:
        total = float(rules.hook(task, total))
    return total


def pool_score(task: Task, rules: PriorityRules) -> float:
    """The static pool score of ``task``: lower is served first (see the module docstring)."""
    return task.enqueued_at - points(task, rules) * rules.seconds_per_point


def effective_priority(task: Task, rules: PriorityRules, now: float) -> float:
    """Points including aging at ``now``: what ``tasks explain`` and announcements show.

    Exactly ``(now - pool_score) / seconds_per_point`` with aging on, so it orders tasks as the
    pool does at any ``now``. Not clamped at ``enqueued_at``: with clocks of several nodes a
    little apart, a clamp would tie tasks the pool tells apart. No aging when the rate is <= 0.
    """
    waited_minutes = (now - task.enqueued_at) / 60.0
    return points(task, rules) + max(0.0, rules.aging_per_minute) * waited_minutes


def claimable_on(task: Task, node: str) -> bool:
    """True when a claimer on ``node`` may reserve ``task``: a live caller waits on one node
    and only that node's serve can bridge it. ``""`` on either side means one node."""
    return task.kind is not TaskKind.CALL or not task.node or not node or task.node == node


def eligible(agent: Agent, task: Task, now: float) -> bool:
    """True when ``agent`` may take ``task`` at ``now``.

    The agent must be ready, have the task's skill at ``min_level`` or above, and carry every
    required attribute. A task with a preferred agent waits for that agent until
    ``preferred_until``; after that anyone eligible may take it.
    """
    if agent.state is not AgentState.READY or task.state is not TaskState.QUEUED:
        return False
    if agent.skills.get(task.skill, 0) < task.min_level:
        return False
    if any(agent.attributes.get(k) != v for k, v in task.required.items()):
        return False
    if task.preferred_agent and task.preferred_agent != agent.id:
        return task.preferred_until is not None and now >= task.preferred_until
    return True


def best_task(agent: Agent, candidates: list[tuple[float, Task]], now: float) -> Task | None:
    """The lowest-scored task of ``candidates`` (score, task) that ``agent`` may take."""
    best: tuple[float, Task] | None = None
    for score, task in candidates:
        if eligible(agent, task, now) and (best is None or score < best[0]):
            best = (score, task)
    return best[1] if best else None
