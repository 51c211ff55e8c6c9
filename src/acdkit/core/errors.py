"""One error tree for acdkit.

    AcdError
    ├── ConfigError            a setting is missing or wrong (names the key)
    ├── InvalidInput           outside input that cannot be used
    │   ├── NumberRejected     the dialing policy refused a number (carries the reason)
    │   ├── BadDtmf            digits that do not form a valid entry
    │   └── BadRow             a CSV row that cannot become a task
    ├── NotFound
    │   ├── NoSuchTask
    │   ├── NoSuchAgent
    │   ├── NoSuchRating
    │   └── NoSuchInteraction  no served interaction with that task id (nothing to rate)
    ├── Refused                an action the rules forbid (carries the reason)
    │   ├── InvalidTransition  a state machine refused an event
    │   ├── NotAuthorized      wrong PIN, or a rating that is not the rater's own
    │   │   └── NotYourRating  the rater took no part in that interaction
    │   ├── ClaimLost          another dispatcher took the task or the agent first
    │   └── LeaseLost          this serve no longer holds its node's lease: it stops
    └── Unavailable            a service acdkit needs does not answer
        ├── RedisUnavailable
        │   └── NotDurable     replicas did not confirm a write that must survive a failover
        ├── AsteriskUnavailable
        │   └── AriRequestFailed   an ARI request failed or timed out (not a 404 on a gone channel)
        └── AmiUnavailable

Expected outcomes (no agent free, the caller chose a callback) are values, not exceptions.
The CLI maps each branch to a message and an exit code.
"""

from __future__ import annotations


class AcdError(Exception):
    """Base of every error acdkit raises on purpose."""

    exit_code = 1


class ConfigError(AcdError):
    """A setting is missing or has a wrong value; the message names the key."""

    exit_code = 78  # EX_CONFIG

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class InvalidInput(AcdError):
    """Outside input (DTMF, a number, a CSV row, a protocol message) that cannot be used."""

    exit_code = 65  # EX_DATAERR


class NumberRejected(InvalidInput):
    """The dialing policy refused a number; ``reason`` is a short machine-readable code."""

    def __init__(self, number: str, reason: str, detail: str = "") -> None:
        suffix = f" ({detail})" if detail else ""
        super().__init__(f"number {number!r} refused: {reason}{suffix}")
        self.number = number
        self.reason = reason
        self.detail = detail


class BadDtmf(InvalidInput):
    """Digits keyed by a caller that do not form a valid entry; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"bad entry: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail


class BadRow(InvalidInput):
    """A row of an import file that cannot become a task."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class NotFound(AcdError):
    """Something named by id does not exist."""

    exit_code = 66  # EX_NOINPUT


class NoSuchTask(NotFound):
    pass


class NoSuchAgent(NotFound):
    pass


class NoSuchRating(NotFound):
    pass


class NoSuchInteraction(NotFound):
    """No served interaction (task) with that id: there is nothing to rate."""


class Refused(AcdError):
    """The rules forbid this action now."""

    exit_code = 77  # EX_NOPERM


class InvalidTransition(Refused):
    """A state machine refused an event in the current state."""

    def __init__(self, what: str, state: str, event: str) -> None:
        super().__init__(f"{what} in state {state!r} cannot take {event!r}")
        self.what = what
        self.state = state
        self.event = event


class NotAuthorized(Refused):
    pass


class NotYourRating(NotAuthorized):
    """The rater took no part in the interaction, so the rating is not theirs to change."""


class ClaimLost(Refused):
    """Another dispatcher reserved the task or the agent first."""


class LeaseLost(Refused):
    """This `serve` could not renew its node's lease in time, or found it taken: it must
    stop acting at once and exit; a standby takes the node over (docs/standby.md)."""

    exit_code = 75  # EX_TEMPFAIL: systemd starts it again, as a standby


class Unavailable(AcdError):
    """A service acdkit needs does not answer."""

    exit_code = 69  # EX_UNAVAILABLE


class RedisUnavailable(Unavailable):
    pass


class NotDurable(RedisUnavailable):
    """Redis did not confirm in time that enough replicas hold a write that must survive a
    failover (a booking, a claim, a dial lock): the work is undone or not started, never
    reported as done (docs/redis-ha.md)."""


class AsteriskUnavailable(Unavailable):
    pass


class AriRequestFailed(AsteriskUnavailable):
    """An ARI request failed, timed out, or was in flight when the connection dropped."""

    def __init__(self, method: str, path: str, status: int | None, detail: str) -> None:
        where = f"{method} {path}"
        super().__init__(f"ARI {where} failed" + (f" ({status})" if status else "") + f": {detail}")
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail


class AmiUnavailable(Unavailable):
    pass
