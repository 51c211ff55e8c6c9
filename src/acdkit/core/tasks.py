"""Tasks: every piece of work an agent does, and the state machine they live by.

A task is a frozen value; ``transition(task, event, now)`` returns the next value or raises
``InvalidTransition``. Times are epoch seconds passed in by the caller (the core reads no clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType

from acdkit.core.errors import InvalidTransition


class TaskKind(StrEnum):
    CALL = "call"
    CALLBACK = "callback"
    VOICE_REQUEST = "voice_request"
    OUTBOUND = "outbound"


class TaskState(StrEnum):
    SCHEDULED = "scheduled"  # waits for its due time, not yet in the pool
    QUEUED = "queued"  # in the pool, waiting for an agent
    RESERVED = "reserved"  # claimed by one agent, being connected
    ACTIVE = "active"  # agent and customer are talking (or the agent works on it)
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ABANDONED = "abandoned"  # the live caller hung up before being served


TERMINAL_STATES = frozenset(
    {
        TaskState.COMPLETED,
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.EXPIRED,
        TaskState.ABANDONED,
    }
)


class TaskEvent(StrEnum):
    DUE = "due"  # scheduled → queued
    RESERVE = "reserve"  # queued → reserved (needs agent_id)
    RELEASE = "release"  # reserved/active → queued, keeping its place
    CONNECT = "connect"  # reserved → active
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    EXPIRE = "expire"
    ABANDON = "abandon"
    RESCHEDULE = "reschedule"  # queued/reserved → scheduled (a retry later; needs due_at)


_ALLOWED: dict[TaskEvent, frozenset[TaskState]] = {
    TaskEvent.DUE: frozenset({TaskState.SCHEDULED}),
    TaskEvent.RESERVE: frozenset({TaskState.QUEUED}),
    TaskEvent.RELEASE: frozenset({TaskState.RESERVED, TaskState.ACTIVE}),
    TaskEvent.CONNECT: frozenset({TaskState.RESERVED}),
    TaskEvent.COMPLETE: frozenset({TaskState.ACTIVE, TaskState.RESERVED}),
    TaskEvent.FAIL: frozenset({TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RESERVED,
                               TaskState.ACTIVE}),
    TaskEvent.CANCEL: frozenset({TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RESERVED}),
    # Reserved/active too: a callback attempt that ends past its expiry (core.callbacks).
    TaskEvent.EXPIRE: frozenset({TaskState.SCHEDULED, TaskState.QUEUED, TaskState.RESERVED,
                                 TaskState.ACTIVE}),
    TaskEvent.ABANDON: frozenset({TaskState.QUEUED, TaskState.RESERVED}),
    TaskEvent.RESCHEDULE: frozenset({TaskState.QUEUED, TaskState.RESERVED, TaskState.ACTIVE,
                                     TaskState.FAILED, TaskState.EXPIRED}),
}

_TARGET: dict[TaskEvent, TaskState] = {
    TaskEvent.DUE: TaskState.QUEUED,
    TaskEvent.RESERVE: TaskState.RESERVED,
    TaskEvent.RELEASE: TaskState.QUEUED,
    TaskEvent.CONNECT: TaskState.ACTIVE,
    TaskEvent.COMPLETE: TaskState.COMPLETED,
    TaskEvent.FAIL: TaskState.FAILED,
    TaskEvent.CANCEL: TaskState.CANCELLED,
    TaskEvent.EXPIRE: TaskState.EXPIRED,
    TaskEvent.ABANDON: TaskState.ABANDONED,
    TaskEvent.RESCHEDULE: TaskState.SCHEDULED,
}

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Task:
    """One unit of work.

    ``enqueued_at`` is the task's place in line: it is kept across releases, and an instant
    callback inherits the caller's original enqueue time. ``priority`` is the explicit priority
    (from the source or the business rules); aging and weights are applied by ``routing``.
    """

    id: str
    kind: TaskKind
    skill: str
    created_at: float
    enqueued_at: float
    state: TaskState = TaskState.QUEUED
    priority: int = 0
    number: str = ""  # E.164 of the customer, validated by the number policy
    name: str = ""
    source: str = ""  # ivr entry, csv file, missed-call, ...
    due_at: float | None = None
    preferred_agent: str | None = None
    preferred_until: float | None = None  # after this, any eligible agent may take it
    min_level: int = 1
    required: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # agent attributes
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    attempts: int = 0
    agent_id: str | None = None
    channel_id: str | None = None  # the live caller's channel (kind call)
    customer_rating: float | None = None
    outcome: str = ""  # why it ended, for terminal states
    node: str = ""  # the Asterisk node holding the live caller's channel ("": one node)

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES


def transition(
    task: Task,
    event: TaskEvent,
    now: float,
    *,
    agent_id: str | None = None,
    due_at: float | None = None,
    outcome: str = "",
) -> Task:
    """Return ``task`` after ``event`` at ``now``.

    Raises ``InvalidTransition`` when the event is not allowed in the task's state, when
    ``RESERVE`` has no ``agent_id`` or ``RESCHEDULE`` has no ``due_at``.
    """
    if task.state not in _ALLOWED[event]:
        raise InvalidTransition("task", task.state, event)
    if event is TaskEvent.RESERVE:
        if not agent_id:
            raise InvalidTransition("task", task.state, "reserve without an agent")
        return replace(task, state=TaskState.RESERVED, agent_id=agent_id)
    if event is TaskEvent.RESCHEDULE:
        if due_at is None:
            raise InvalidTransition("task", task.state, "reschedule without a due time")
        return replace(task, state=TaskState.SCHEDULED, due_at=due_at, agent_id=None)
    if event is TaskEvent.RELEASE:
        return replace(task, state=TaskState.QUEUED, agent_id=None)
    if event is TaskEvent.DUE:
        # A scheduled task joins the line when it becomes due, unless it kept an older place.
        return replace(task, state=TaskState.QUEUED, enqueued_at=min(task.enqueued_at, now))
    return replace(task, state=_TARGET[event], outcome=outcome or task.outcome)
