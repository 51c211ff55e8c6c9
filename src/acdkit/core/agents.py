"""Agents: who they are, how they are reached, and the state machine they live by.

``transition(agent, event, now)`` returns the next value or raises ``InvalidTransition``.
Invariant: an agent holds a task exactly in the states ``reserved`` and ``on_call``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from fnmatch import fnmatchcase
from types import MappingProxyType

from acdkit.core.errors import InvalidInput, InvalidTransition
from acdkit.core.numbers import NumberPolicy, normalize


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    RESERVED = "reserved"  # a task is claimed for this agent; its phone is being rung
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


class AgentMode(StrEnum):
    PER_CALL = "per_call"  # acdkit calls the agent's phone for each task
    PERSISTENT = "persistent"  # one call kept up between tasks, tasks bridged in and out


class AgentEvent(StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"
    PAUSE = "pause"
    RESUME = "resume"
    RESERVE = "reserve"
    ANSWER = "answer"  # the agent leg answered and the customer is connected
    NO_ANSWER = "no_answer"  # the agent did not answer in time (or declined): wrap-up, or paused
    END = "end"  # the call or work ended: wrap-up begins
    WRAPPED = "wrapped"  # wrap-up time is over


_ALLOWED: dict[AgentEvent, frozenset[AgentState]] = {
    AgentEvent.LOGIN: frozenset({AgentState.LOGGED_OUT}),
    AgentEvent.LOGOUT: frozenset(set(AgentState) - {AgentState.LOGGED_OUT}),
    AgentEvent.PAUSE: frozenset({AgentState.READY, AgentState.WRAP_UP, AgentState.PAUSED}),
    AgentEvent.RESUME: frozenset({AgentState.PAUSED}),
    AgentEvent.RESERVE: frozenset({AgentState.READY}),
    AgentEvent.ANSWER: frozenset({AgentState.RESERVED}),
    AgentEvent.NO_ANSWER: frozenset({AgentState.RESERVED}),
    AgentEvent.END: frozenset({AgentState.RESERVED, AgentState.ON_CALL}),
    AgentEvent.WRAPPED: frozenset({AgentState.WRAP_UP}),
}

# The shape of a reach: a PJSIP endpoint of ours, or an outside number in E.164. The shape
# alone admits premium and foreign numbers: ``check_reach`` applies the dialing policy, at
# every login and again before every dial of the reach (docs/security-policy.md).
_ENDPOINT = re.compile(r"^PJSIP/[A-Za-z0-9_.-]{1,40}$")
_NUMBER = re.compile(r"^\+[1-9][0-9]{5,14}$")
_EMPTY_SKILLS: Mapping[str, int] = MappingProxyType({})
_EMPTY_ATTRS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Agent:
    id: str
    name: str = ""
    pin_hash: str = ""
    skills: Mapping[str, int] = field(default_factory=lambda: _EMPTY_SKILLS)  # skill → level 1..9
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY_ATTRS)
    reach: str = ""  # "PJSIP/agent1" or "+15551234567"
    mode: AgentMode = AgentMode.PER_CALL
    state: AgentState = AgentState.LOGGED_OUT
    state_since: float = 0.0
    task_id: str | None = None
    misses: int = 0  # consecutive tasks offered and not answered
    pause_reason: str = ""

    @property
    def logged_in(self) -> bool:
        return self.state is not AgentState.LOGGED_OUT


def validate_reach(reach: str) -> str:
    """Return ``reach`` if it is a PJSIP endpoint or an E.164 number; raise ``InvalidInput``."""
    if _ENDPOINT.fullmatch(reach) or _NUMBER.fullmatch(reach):  # match() lets "...\n" through
        return reach
    raise InvalidInput(f"reach {reach!r} is neither PJSIP/<endpoint> nor an E.164 number")


@dataclass(frozen=True)
class ReachPolicy:
    """Where an agent may be reached: a PJSIP endpoint whose name matches one of
    ``endpoints`` (``fnmatch`` patterns such as ``agent*``; never the ``trunk``), or an
    outside number that the dialing policy ``numbers`` allows."""

    numbers: NumberPolicy
    endpoints: tuple[str, ...] = ()
    trunk: str = ""


_TYPED = re.compile(r"[\s().-]")  # what people put between a number's digits
_DIALED = re.compile(r"\+?[0-9]{3,15}")


def check_reach(reach: str, policy: ReachPolicy) -> str:
    """Return ``reach`` as acdkit dials it: ``PJSIP/<endpoint>``, or the number in E.164.

    Raises ``InvalidInput`` for any other shape or an endpoint no pattern allows, and
    ``NumberRejected`` (premium, foreign, do-not-call, ...: ``numbers.normalize``) for a
    number, in E.164 or as dialed in the center's region, typed as people do (``+1 212
    555-0100``, ``(212) 555-0100``). The do-not-call list kept in Redis is
    the caller's to check.
    """
    if not reach.startswith("PJSIP/"):  # a number, in E.164 or as dialed in the region
        number = _TYPED.sub("", reach)
        if not _DIALED.fullmatch(number):
            raise InvalidInput(f"reach {reach!r} is neither PJSIP/<endpoint> nor a number")
        return validate_reach(normalize(number, policy.numbers))
    shaped = validate_reach(reach)
    name = shaped.removeprefix("PJSIP/")
    if name != policy.trunk and any(fnmatchcase(name, p) for p in policy.endpoints):
        return shaped
    raise InvalidInput(f"reach {reach!r}: {name!r} is not an agent endpoint (agents.endpoints)")


def transition(
    agent: Agent,
    event: AgentEvent,
    now: float,
    *,
    task_id: str | None = None,
    reach: str | None = None,
    mode: AgentMode | None = None,
    max_misses: int = 3,
    reason: str = "",
) -> Agent:
    """Return ``agent`` after ``event`` at ``now``; raise ``InvalidTransition`` if not allowed.

    ``LOGIN`` takes ``reach`` (and optionally ``mode``); ``RESERVE`` takes ``task_id``;
    ``NO_ANSWER`` pauses the agent after ``max_misses`` misses in a row.
    """
    if agent.state not in _ALLOWED[event]:
        raise InvalidTransition(f"agent {agent.id}", agent.state, event)
    moved = replace(agent, state_since=now)
    if event is AgentEvent.LOGIN:
        if not reach:
            raise InvalidTransition(f"agent {agent.id}", agent.state, "login without a reach")
        return replace(moved, state=AgentState.READY, reach=validate_reach(reach),
                       mode=mode or agent.mode, misses=0, pause_reason="")
    if event is AgentEvent.LOGOUT:
        return replace(moved, state=AgentState.LOGGED_OUT, task_id=None)
    if event is AgentEvent.PAUSE:
        return replace(moved, state=AgentState.PAUSED, pause_reason=reason or "paused")
    if event is AgentEvent.RESUME:
        return replace(moved, state=AgentState.READY, misses=0, pause_reason="")
    if event is AgentEvent.RESERVE:
        if not task_id:
            raise InvalidTransition(f"agent {agent.id}", agent.state, "reserve without a task")
        return replace(moved, state=AgentState.RESERVED, task_id=task_id)
    if event is AgentEvent.ANSWER:
        return replace(moved, state=AgentState.ON_CALL, misses=0)
    if event is AgentEvent.NO_ANSWER:
        # A missed offer costs the agent a wrap-up period, so the task it missed goes to
        # another ready agent first instead of ringing the same phone again at once.
        misses = agent.misses + 1
        if misses >= max_misses:
            return replace(moved, state=AgentState.PAUSED, task_id=None, misses=misses,
                           pause_reason="missed")
        return replace(moved, state=AgentState.WRAP_UP, task_id=None, misses=misses)
    if event is AgentEvent.END:
        return replace(moved, state=AgentState.WRAP_UP, task_id=None)
    return replace(moved, state=AgentState.READY)  # WRAPPED


def set_mode(agent: Agent, mode: AgentMode) -> Agent:
    """Switch the connection mode; it takes effect at the agent's next task."""
    return replace(agent, mode=mode)


_PIN = re.compile(r"^[0-9]{4,12}$")
_ITERATIONS = 100_000


def hash_pin(pin: str, salt: bytes) -> str:
    """Return a salted PBKDF2 hash of a 4–12 digit PIN; raise ``InvalidInput`` on other PINs."""
    if not _PIN.fullmatch(pin):
        raise InvalidInput("a PIN is 4 to 12 digits")
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, _ITERATIONS)
    return f"pbkdf2${_ITERATIONS}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, pin_hash: str) -> bool:
    """True when ``pin`` matches ``pin_hash`` (constant-time compare)."""
    try:
        _, rounds, salt, digest = pin_hash.split("$")
        got = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(rounds))
        want = bytes.fromhex(digest)  # bytes: compare_digest raises TypeError on non-ASCII str
    except ValueError:
        return False
    return hmac.compare_digest(got, want)
