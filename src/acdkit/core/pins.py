"""PIN sign-in decisions: how many wrong PINs an agent id may take before it is locked.

Pure: the store counts failures (``store/pins.py``, with a lifetime of ``lockout`` seconds)
and runs the hash check off the event loop; this module only decides. The phone login and
the web sign-in use the same check (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PinOutcome(StrEnum):
    """What a PIN check says: a value, not an exception (a wrong PIN is an expected outcome)."""

    OK = "ok"
    WRONG = "wrong"  # a wrong PIN, an unknown agent or an agent without a PIN: all alike
    LOCKED = "locked"  # too many failures: refused without looking at the PIN


@dataclass(frozen=True)
class PinPolicy:
    """``max_failures`` wrong PINs in a row lock the agent id for ``lockout`` seconds after
    the last attempt."""

    max_failures: int = 5
    lockout: float = 300.0


def attempt_allowed(attempts: int, policy: PinPolicy) -> bool:
    """True when attempt number ``attempts`` (counted before the check, this one included)
    may be checked at all."""
    return attempts <= policy.max_failures


def outcome(matched: bool, attempts: int, policy: PinPolicy) -> PinOutcome:
    """The outcome of a checked attempt: the failure that reaches the limit locks the id."""
    if matched:
        return PinOutcome.OK
    return PinOutcome.LOCKED if attempts >= policy.max_failures else PinOutcome.WRONG
