"""Asterisk vocabulary shared by Python and dialplan/*.conf: Stasis args, channel variables,
contexts. Change a name here and in dialplan/ together (a test checks they agree)."""

from __future__ import annotations

import re

APP_NAME = "acdkit"

# Stasis(acdkit,<args>)
ARG_INBOUND = "inbound"  # inbound,<entry>
ARG_AGENT_LOGIN = "agent-login"
ARG_RATINGS = "ratings"  # ratings,<entry>: the ratings line (manage your ratings)

# Contexts defined in dialplan/extensions_acdkit.conf
FAILURE_CONTEXT = "acdkit-failure"
FALLBACK_CONTEXT = "acdkit-fallback"  # a plain queue: past queue.max_wait, or no app
CALLBACK_QUEUE_CONTEXT = "acdkit-callback-queue"
CALLBACK_AGENT_FIRST_CONTEXT = "acdkit-callback-agent-first"

# Channel variables
STATUS = "ACDKIT_STATUS"
QUEUE = "ACDKIT_QUEUE"
TASK_ID = "ACDKIT_TASK_ID"
PRIORITY = "ACDKIT_PRIORITY"
SINCE = "ACDKIT_SINCE"  # epoch second the caller joined Queue() (set by the dialplan)
AGENT = "ACDKIT_AGENT"  # choose-agent: the queue member interface to ring first
MEMBER = "ACDKIT_MEMBER"  # choose-agent: that member's name (the survey rates it)
DIAL = "ACDKIT_DIAL"  # agent-first dial-back: the customer's dial string, built by acdkit
CALLER_ID = "ACDKIT_CALLERID"  # agent-first dial-back: the number the customer sees
DID = "ACDKIT_DID"  # the number dialled from outside (acdkit-pstn-in)

# ACDKIT_STATUS values the AGI routes leave (dialplan mode)
STATUS_STORED = "stored"  # callback or voice request stored
STATUS_WAIT = "wait"  # the caller keeps waiting
STATUS_FAILED = "failed"  # anything went wrong: the dialplan's failure path
STATUS_CHOSEN = "chosen"  # choose-agent set ACDKIT_AGENT
STATUS_NONE = "none"  # choose-agent found nobody / survey got no answer
STATUS_RATED = "rated"  # survey stored the caller's rating
STATUS_MENU = "menu"  # my-requests: nothing (more) to do here, on to the menu or queue
STATUS_DONE = "done"  # my-requests: the caller kept, cancelled, moved or added: hang up
STATUS_QUEUE = "queue"  # my-requests: agent now, into the queue with ACDKIT_PRIORITY

# Dialplan-mode tasks: skill "queue:<Queue() name>" and the required attribute
# acdkit_mode=dialplan. No acdkit agent has such a skill (or attribute), so the Stasis
# dispatcher never takes them; `acdkit agi` dials them back through AMI into Queue().
DIALPLAN_SKILL_PREFIX = "queue:"
MODE_ATTRIBUTE = "acdkit_mode"
MODE_DIALPLAN = "dialplan"


def dialplan_skill(queue: str) -> str:
    """The pool skill of dialplan-mode work for Asterisk queue ``queue``."""
    return DIALPLAN_SKILL_PREFIX + queue


def queue_of_skill(skill: str) -> str | None:
    """The Asterisk queue of a dialplan-mode skill, or None for any other skill."""
    return skill[len(DIALPLAN_SKILL_PREFIX):] if skill.startswith(DIALPLAN_SKILL_PREFIX) else None


_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_id(text: str) -> str:
    """``text`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``-``."""
    return _SAFE.sub("-", text)


def interaction_id(unique_id: str) -> str:
    """The rating interaction id of a ``Queue()`` call: ``agi-<caller's uniqueid>``."""
    return "agi-" + safe_id(unique_id or "call")[:100]
