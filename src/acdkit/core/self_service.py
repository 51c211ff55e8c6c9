"""Calling again: what a caller with a pending callback or an open voice request hears and
may do before the menu (docs/self-service.md).

The caller is known by its calling number only; a withheld or anonymous one is nobody
(``caller_key`` returns None) and goes straight to the menu. Per item the keys are::

    callback waiting (queued or scheduled):  1 keep, 2 cancel, 3 move (HHMM), 4 agent now,
                                             0 the menu
    callback being dialed (reserved/active): 1 keep, 0 the menu
    open voice request:                      1 add to it (until it is answered), 0 the menu

No key goes on to the next item, then the menu. Changing anything (cancel, move, agent now,
add) needs the customer's PIN when one is set for the number (``needs_pin``). Everything here
is pure: the adapters (ari/my_requests.py, agi/my_requests.py) play, read and store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from acdkit.core.dtmf import say_when
from acdkit.core.errors import NumberRejected
from acdkit.core.numbers import NumberPolicy, normalize
from acdkit.core.requests import RequestStatus
from acdkit.core.tasks import TaskState

_DIALABLE = re.compile(r"\+?[0-9]{3,20}")
WAITING = frozenset({TaskState.QUEUED, TaskState.SCHEDULED})
BEING_DIALED = frozenset({TaskState.RESERVED, TaskState.ACTIVE})
OPEN_REQUEST = frozenset({RequestStatus.TRANSCRIBING, RequestStatus.TRANSCRIBED,
                          RequestStatus.UNTRANSCRIBED, RequestStatus.REPLIED})
ADDABLE = frozenset({RequestStatus.TRANSCRIBING, RequestStatus.TRANSCRIBED,
                     RequestStatus.UNTRANSCRIBED})


class Action(StrEnum):
    KEEP = "keep"  # leave it as it is and hang up
    CANCEL = "cancel"
    MOVE = "move"  # a new HHMM, keyed and read back as when booking
    LIVE = "live"  # speak with an agent now: the callback becomes this call, same place
    ADD = "add"  # record an addendum to the voice request
    MENU = "menu"  # on to the IVR menu
    NEXT = "next"  # no key: the next item, then the menu


class ItemKind(StrEnum):
    CALLBACK = "callback"
    REQUEST = "request"


@dataclass(frozen=True)
class Item:
    """One thing the caller asked for earlier: a callback (``state``, ``due_at``) or a voice
    request (``status``); ``ref`` is the reference the caller heard when it was made."""

    kind: ItemKind
    task_id: str
    ref: str
    state: TaskState | None = None
    due_at: float | None = None
    status: RequestStatus | None = None


CHANGES = frozenset({Action.CANCEL, Action.MOVE, Action.LIVE, Action.ADD})
_CALLBACK_KEYS = {"1": Action.KEEP, "2": Action.CANCEL, "3": Action.MOVE, "4": Action.LIVE,
                  "0": Action.MENU}


def caller_key(raw: str, policy: NumberPolicy) -> str | None:
    """The E.164 a calling number stands for, or None for a withheld, anonymous or unusable
    one (``anonymous``, ``restricted``, empty, letters, a number the policy refuses): such a
    caller never hears anyone's callbacks."""
    text = (raw or "").strip()
    if not _DIALABLE.fullmatch(text) or not text.strip("+0"):
        return None
    try:
        return normalize(text, policy)
    except NumberRejected:
        return None


def keys_for(item: Item) -> dict[str, Action]:
    """The keys the caller may press for ``item`` and what each does."""
    if item.kind is ItemKind.REQUEST:
        return {"1": Action.ADD, "0": Action.MENU} if item.status in ADDABLE \
            else {"0": Action.MENU}
    if item.state in WAITING:
        return dict(_CALLBACK_KEYS)
    return {"1": Action.KEEP, "0": Action.MENU}


def choose(item: Item, key: str | None) -> Action | None:
    """What ``key`` does for ``item``: an ``Action``, ``NEXT`` for no key, None for a key
    that means nothing here (say so, ask again)."""
    if key is None:
        return Action.NEXT
    return keys_for(item).get(key)


def needs_pin(action: Action, pin_set: bool) -> bool:
    """True when ``action`` changes something and the number has a PIN."""
    return pin_set and action in CHANGES


def is_open(status: RequestStatus) -> bool:
    return status in OPEN_REQUEST


def announce(item: Item, now: datetime) -> list[str]:
    """Media for "you have a callback booked for 2:30 pm" (``now`` aware, in the center's
    zone; a due time is read in that zone) or "your request <ref> is <status>", then the
    keys on offer."""
    if item.kind is ItemKind.REQUEST:
        status = item.status or RequestStatus.TRANSCRIBING
        head = ["sound:acdkit/ss-request", f"digits:{item.ref}", status_prompt(status)]
    elif item.state in BEING_DIALED:
        head = ["sound:acdkit/ss-callback-now"]
    elif item.due_at is not None and item.state is TaskState.SCHEDULED:
        when = datetime.fromtimestamp(item.due_at, now.tzinfo)
        head = ["sound:acdkit/ss-callback-at", *say_when(when, now)]
    else:
        head = ["sound:acdkit/ss-callback-waiting"]
    return [*head, *options_prompt(item)]


def status_prompt(status: RequestStatus) -> str:
    """The sound that says where a voice request stands."""
    if status is RequestStatus.REPLIED:
        return "sound:acdkit/ss-status-replied"
    return "sound:acdkit/ss-status-waiting"


def options_prompt(item: Item) -> list[str]:
    keys = keys_for(item)
    if item.kind is ItemKind.REQUEST:
        return ["sound:acdkit/ss-request-options"] if "1" in keys \
            else ["sound:acdkit/ss-menu-option"]
    if "2" in keys:
        return ["sound:acdkit/ss-callback-options"]
    return ["sound:acdkit/ss-callback-now-options"]


def done_prompt(action: Action) -> list[str]:
    """What the caller hears once ``action`` is done (before the hang-up or the queue)."""
    return {Action.KEEP: ["sound:acdkit/ss-kept", "sound:acdkit/goodbye"],
            Action.CANCEL: ["sound:acdkit/ss-cancelled", "sound:acdkit/goodbye"],
            Action.LIVE: ["sound:acdkit/ss-connecting"],
            Action.ADD: ["sound:acdkit/ss-added", "sound:acdkit/goodbye"],
            }.get(action, [])


def confirmation_text(ref: str, due: datetime | None) -> str:
    """The text that confirms a booked (or moved) callback: its time in the center's zone
    (``due`` aware) or "as soon as an agent is free", and its reference."""
    if due is None:
        return f"We will call you back as soon as an agent is free. Reference {ref}."
    when = due.strftime("%I:%M %p").lstrip("0")
    return f"We will call you at {when} on {due:%a %d %b}. Reference {ref}."
