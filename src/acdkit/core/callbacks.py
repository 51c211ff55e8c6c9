"""Callbacks: what follows each dial-back attempt, on top of the generic task machine.

``after_attempt(task, outcome, now, policy)`` returns a ``Decision``: the ``TaskEvent`` to
apply (``COMPLETE``, ``RESCHEDULE`` at a due time, ``FAIL``, ``EXPIRE``, or ``RELEASE`` when the
agent did not answer), with the attempt count the task carries afterwards. ``apply`` performs
it. Times are epoch seconds passed in. An agent that did not answer is not a customer attempt:
the task goes back to the pool with its place (``RELEASE`` keeps ``enqueued_at``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum

from acdkit.core.errors import ConfigError
from acdkit.core.tasks import Task, TaskEvent, TaskState, transition


class DialOutcome(StrEnum):
    ANSWERED = "answered"  # the customer answered and was bridged with the agent
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"  # the call could not be placed (congestion, the trunk refused it)
    AGENT_NO_ANSWER = "agent_no_answer"  # the agent leg was not answered: no customer dialed
    # The customer answered but left before an agent took the call (dialplan mode: hung up
    # in Queue()): not served, so the retry policy decides, like a call not answered.
    ABANDONED = "abandoned"


class Next(StrEnum):
    COMPLETED = "completed"
    RETRY = "retry"
    REQUEUE = "requeue"  # back to the pool with its place, attempts unchanged
    FAILED = "failed"
    EXPIRED = "expired"


_EVENT = {Next.COMPLETED: TaskEvent.COMPLETE, Next.RETRY: TaskEvent.RESCHEDULE,
          Next.REQUEUE: TaskEvent.RELEASE, Next.FAILED: TaskEvent.FAIL,
          Next.EXPIRED: TaskEvent.EXPIRE}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how far apart a callback is tried.

    ``intervals[i]`` is the wait in seconds after customer attempt ``i + 1``; the last entry
    repeats. ``expire_after`` counts from the task's ``created_at`` (``None``: never).
    ``follow_up`` turns a failed or expired callback into a follow-up task (the caller of
    ``after_attempt`` creates it when ``Decision.follow_up`` is set).
    """

    max_attempts: int = 3
    intervals: tuple[float, ...] = (300.0, 900.0, 3600.0)
    expire_after: float | None = 86_400.0
    follow_up: bool = False

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("callbacks.max_attempts", "must be 1 or more")
        if not self.intervals or any(i <= 0 for i in self.intervals):
            raise ConfigError("callbacks.intervals", "needs at least one interval, all above 0")
        if self.expire_after is not None and self.expire_after <= 0:
            raise ConfigError("callbacks.expire_after", "must be above 0 (or unset)")

    def interval(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` customer attempts (1 or more)."""
        return self.intervals[min(max(attempts, 1), len(self.intervals)) - 1]

    def deadline(self, task: Task) -> float | None:
        """The epoch second at which ``task`` expires, or ``None``."""
        return None if self.expire_after is None else task.created_at + self.expire_after


@dataclass(frozen=True)
class Decision:
    """What to do with a task after an attempt; ``event`` is ``TaskEvent`` semantics."""

    next: Next
    attempts: int  # customer attempts made, including this one
    due_at: float | None = None  # for RETRY
    follow_up: bool = False
    outcome: str = ""  # why it ended, stored on the task

    @property
    def event(self) -> TaskEvent:
        return _EVENT[self.next]


def after_attempt(task: Task, outcome: DialOutcome, now: float, policy: RetryPolicy) -> Decision:
    """Decide what follows an attempt on ``task`` (reserved or active) that ended at ``now``.

    Answered: completed. The agent did not answer: requeued with its place and no attempt
    counted (expired instead once past the deadline). Customer not reached: failed after
    ``max_attempts`` attempts, expired when ``now`` or the next retry is at or past the
    deadline, else a retry ``policy.interval(attempts)`` seconds later. Calling hours are the
    caller's to apply to ``due_at`` (``numbers.next_calling_time``). Raises nothing.
    """
    deadline = policy.deadline(task)
    if outcome is DialOutcome.ANSWERED:
        return Decision(Next.COMPLETED, task.attempts + 1, outcome="answered")
    if outcome is DialOutcome.AGENT_NO_ANSWER:
        if deadline is not None and now >= deadline:
            return _ended(Next.EXPIRED, task.attempts, "expired", policy)
        return Decision(Next.REQUEUE, task.attempts)
    attempts = task.attempts + 1
    if attempts >= policy.max_attempts:
        return _ended(Next.FAILED, attempts, f"{outcome.value} after {attempts} attempts", policy)
    due_at = now + policy.interval(attempts)
    if deadline is not None and due_at >= deadline:
        return _ended(Next.EXPIRED, attempts, f"expired after {outcome.value}", policy)
    return Decision(Next.RETRY, attempts, due_at=due_at, outcome=outcome.value)


def check_expired(task: Task, now: float, policy: RetryPolicy) -> Decision | None:
    """An ``EXPIRED`` decision for a waiting (scheduled or queued) ``task`` past its deadline
    at ``now``, else ``None`` (for the job that promotes due callbacks)."""
    deadline = policy.deadline(task)
    waiting = task.state in (TaskState.SCHEDULED, TaskState.QUEUED)
    if not waiting or deadline is None or now < deadline:
        return None
    return _ended(Next.EXPIRED, task.attempts, "expired", policy)


def _ended(next_: Next, attempts: int, outcome: str, policy: RetryPolicy) -> Decision:
    return Decision(next_, attempts, follow_up=policy.follow_up, outcome=outcome)


def apply(task: Task, decision: Decision, now: float) -> Task:
    """Return ``task`` after ``decision`` at ``now``: the event through ``tasks.transition``
    and the new attempt count. Raises ``InvalidTransition`` when the task's state does not
    take the event."""
    moved = transition(task, decision.event, now, due_at=decision.due_at,
                       outcome=decision.outcome)
    return replace(moved, attempts=decision.attempts)


def reference(task_id: str) -> str:
    """A short speakable reference for ``task_id``: 7 digits from a hash of the id and a Luhn
    check digit (8 digits, leading zeros kept). Not unique: look it up with the number."""
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).digest()
    body = f"{int.from_bytes(digest[:8], 'big') % 10**7:07d}"
    return body + str(_luhn_digit(body))


def is_reference(text: str) -> bool:
    """True when ``text`` is 8 digits whose last is the Luhn check digit of the others (one
    mistyped digit is always caught, two swapped neighbours nearly always)."""
    if len(text) != 8 or not all(c in "0123456789" for c in text):
        return False
    return _luhn_digit(text[:7]) == int(text[7])


def _luhn_digit(body: str) -> int:
    total = 0
    for i, char in enumerate(reversed(body)):
        d = int(char) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return (10 - total % 10) % 10
