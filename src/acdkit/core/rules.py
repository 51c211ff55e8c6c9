"""Business rules: a declarative list from configuration, evaluated in order on a task.

A rule matches on the task's kind, source (shell-style patterns), attributes (exact values),
age (seconds since ``created_at`` at the evaluation time) and customer attempts; when it
matches it sets or adds priority points, restricts the task (another skill queue, a minimum
skill level, agent attributes it requires) or drops it. A dropping rule ends the evaluation.

When rules run (the pool keeps a static score, ``routing.pool_score``): the outbound store
evaluates them when a task is added and again before each retry is scheduled, always from
the task's values as its source gave them (``Base``), so nothing is counted twice. The
evaluation's priority is written into ``Task.priority`` and so into the stored score; an
``age`` condition therefore means "age at enqueue or at the latest attempt". ``tasks explain``
evaluates them once more at the current time. The Python hook (``priority.hook``) runs later,
inside ``routing.points``, on every scoring.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from acdkit.core.errors import ConfigError
from acdkit.core.tasks import Task, TaskKind

_EMPTY: Mapping[str, str] = MappingProxyType({})
_KEYS = frozenset({"name", "kind", "source", "attributes", "min_age", "max_age",
                   "min_attempts", "max_attempts", "set_priority", "add_priority", "require",
                   "skill", "min_level", "drop"})


@dataclass(frozen=True)
class Rule:
    """One rule; an empty condition matches every task."""

    name: str
    kinds: frozenset[TaskKind] = frozenset()
    sources: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    min_age: float | None = None
    max_age: float | None = None
    min_attempts: int | None = None
    max_attempts: int | None = None
    set_priority: int | None = None
    add_priority: int = 0
    require: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    skill: str | None = None
    min_level: int | None = None
    drop: bool = False

    def matches(self, task: Task, age: float) -> bool:
        """True when every condition of the rule holds for ``task`` at ``age`` seconds."""
        return (
            (not self.kinds or task.kind in self.kinds)
            and (not self.sources or any(fnmatch.fnmatchcase(task.source, p)
                                         for p in self.sources))
            and all(task.attributes.get(k) == v for k, v in self.attributes.items())
            and _within(age, self.min_age, self.max_age)
            and _within(task.attempts, self.min_attempts, self.max_attempts)
        )

    def apply(self, task: Task) -> Task:
        """``task`` after this rule's actions (priority, skill, level, required attributes)."""
        priority = self.set_priority if self.set_priority is not None else task.priority
        return replace(task, priority=priority + self.add_priority,
                       skill=self.skill or task.skill,
                       min_level=self.min_level if self.min_level is not None else task.min_level,
                       required=MappingProxyType({**task.required, **self.require}))


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


@dataclass(frozen=True)
class Evaluation:
    """The task after the rules, the names of the rules that fired (in order), and the rule
    that dropped it (empty when kept)."""

    task: Task
    fired: tuple[str, ...]
    dropped_by: str = ""

    @property
    def dropped(self) -> bool:
        return bool(self.dropped_by)


def evaluate(task: Task, rules: Sequence[Rule], now: float) -> Evaluation:
    """Run ``rules`` in order on ``task`` (its values as the source gave them) at ``now``.

    Returns an ``Evaluation``; a matching ``drop`` rule stops there. Raises nothing.
    """
    age = now - task.created_at
    current, fired = task, []
    for rule in rules:
        if not rule.matches(task, age):
            continue
        fired.append(rule.name)
        if rule.drop:
            return Evaluation(current, tuple(fired), rule.name)
        current = rule.apply(current)
    return Evaluation(current, tuple(fired))


def rules_from_config(items: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """The ``[[rules]]`` tables of the settings as rules; raises ``ConfigError`` naming
    ``rules[i].key`` for an unknown key or a wrong value."""
    return tuple(_rule(i, item) for i, item in enumerate(items))


def _rule(index: int, data: Mapping[str, Any]) -> Rule:
    where = f"rules[{index}]"
    unknown = set(data) - _KEYS
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}", "no such rule key")
    try:
        kinds = frozenset(TaskKind(k) for k in _strings(data.get("kind", ())))
        return Rule(
            name=str(data.get("name") or f"rule{index + 1}"), kinds=kinds,
            sources=tuple(_strings(data.get("source", ()))),
            attributes=_table(data.get("attributes")),
            min_age=_num(data, "min_age", float), max_age=_num(data, "max_age", float),
            min_attempts=_num(data, "min_attempts", int),
            max_attempts=_num(data, "max_attempts", int),
            set_priority=_num(data, "set_priority", int),
            add_priority=_num(data, "add_priority", int) or 0,
            require=_table(data.get("require")), skill=data.get("skill") or None,
            min_level=_num(data, "min_level", int), drop=bool(data.get("drop", False)))
    except (TypeError, ValueError) as err:
        raise ConfigError(where, f"bad rule: {err}") from None


def _strings(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) for v in items):
        raise TypeError(f"expected strings, got {value!r}")
    return items


def _table(value: Any) -> Mapping[str, str]:
    if value is None:
        return _EMPTY
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a table, got {value!r}")
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def _num(data: Mapping[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} must be a number, got {value!r}")
    return kind(value)
