"""The calling-again menu (core/self_service.py): who is known, which keys mean what, when a
PIN is asked, what the caller hears."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from acdkit.core.numbers import NumberPolicy
from acdkit.core.requests import RequestStatus
from acdkit.core.self_service import (
    Action,
    Item,
    ItemKind,
    announce,
    caller_key,
    choose,
    confirmation_text,
    keys_for,
    needs_pin,
)
from acdkit.core.tasks import TaskState

POLICY = NumberPolicy()
TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 12, 4, 10, 0, tzinfo=TZ)


def callback(state: TaskState = TaskState.QUEUED, due_at: float | None = None) -> Item:
    return Item(ItemKind.CALLBACK, "t1", "12345678", state=state, due_at=due_at)


def request(status: RequestStatus = RequestStatus.TRANSCRIBED) -> Item:
    return Item(ItemKind.REQUEST, "r1", "87654321", status=status)


@pytest.mark.parametrize("raw", ["", "anonymous", "Anonymous", "restricted", "unknown",
                                 "private", "0", "000000", "+", "12a45", "12"])
def test_withheld_or_anonymous_callers_are_nobody(raw: str) -> None:
    assert caller_key(raw, POLICY) is None


def test_a_calling_number_is_its_e164() -> None:
    assert caller_key("12125550123", POLICY) == "+12125550123"
    assert caller_key("+12125550123", POLICY) == "+12125550123"


def test_a_number_the_policy_refuses_is_nobody() -> None:
    assert caller_key("19005550123", POLICY) is None  # premium rate


@pytest.mark.parametrize(("key", "action"), [
    ("1", Action.KEEP), ("2", Action.CANCEL), ("3", Action.MOVE), ("4", Action.LIVE),
    ("0", Action.MENU), (None, Action.NEXT), ("5", None), ("#", None)])
def test_keys_of_a_waiting_callback(key: str | None, action: Action | None) -> None:
    assert choose(callback(), key) is action
    assert choose(callback(TaskState.SCHEDULED, 1.0), key) is action


@pytest.mark.parametrize("state", [TaskState.RESERVED, TaskState.ACTIVE])
def test_a_callback_being_dialed_can_only_be_kept(state: TaskState) -> None:
    assert keys_for(callback(state)) == {"1": Action.KEEP, "0": Action.MENU}
    assert choose(callback(state), "2") is None


def test_an_open_request_takes_an_addendum_until_answered() -> None:
    assert choose(request(), "1") is Action.ADD
    assert choose(request(RequestStatus.UNTRANSCRIBED), "1") is Action.ADD
    assert choose(request(RequestStatus.REPLIED), "1") is None
    assert choose(request(RequestStatus.REPLIED), "0") is Action.MENU


@pytest.mark.parametrize("action", [Action.CANCEL, Action.MOVE, Action.LIVE, Action.ADD])
def test_changes_need_the_pin_when_one_is_set(action: Action) -> None:
    assert needs_pin(action, pin_set=True)
    assert not needs_pin(action, pin_set=False)


@pytest.mark.parametrize("action", [Action.KEEP, Action.MENU, Action.NEXT])
def test_looking_needs_no_pin(action: Action) -> None:
    assert not needs_pin(action, pin_set=True)


def test_a_scheduled_callback_is_announced_with_its_time() -> None:
    due = datetime(2026, 12, 4, 14, 30, tzinfo=TZ).timestamp()
    media = announce(callback(TaskState.SCHEDULED, due), NOW)
    assert media == ["sound:acdkit/ss-callback-at", "sound:digits/today", "sound:digits/at",
                     "number:2", "number:30", "sound:digits/p-m",
                     "sound:acdkit/ss-callback-options"]


def test_a_queued_callback_and_one_being_dialed() -> None:
    assert announce(callback(), NOW) == ["sound:acdkit/ss-callback-waiting",
                                         "sound:acdkit/ss-callback-options"]
    assert announce(callback(TaskState.RESERVED), NOW) == [
        "sound:acdkit/ss-callback-now", "sound:acdkit/ss-callback-now-options"]


def test_a_request_is_announced_with_its_reference_and_status() -> None:
    assert announce(request(), NOW) == ["sound:acdkit/ss-request", "digits:87654321",
                                        "sound:acdkit/ss-status-waiting",
                                        "sound:acdkit/ss-request-options"]
    assert announce(request(RequestStatus.REPLIED), NOW)[2:] == [
        "sound:acdkit/ss-status-replied", "sound:acdkit/ss-menu-option"]


def test_confirmation_texts() -> None:
    at = datetime(2026, 12, 4, 14, 30, tzinfo=TZ)
    assert confirmation_text("12345678", at) == \
        "We will call you at 2:30 PM on Fri 04 Dec. Reference 12345678."
    assert "as soon as an agent is free" in confirmation_text("12345678", None)
