"""What the agent hears before an outbound customer is dialed (ari/dialback.whisper_of)."""

from __future__ import annotations

import pytest

from acdkit.ari.dialback import whisper_of
from acdkit.core.tasks import Task, TaskKind


def task(kind: TaskKind, source: str = "", attempts: int = 0) -> Task:
    return Task(id="t1", kind=kind, skill="sales", created_at=0.0, enqueued_at=0.0,
                number="+12125550142", source=source, attempts=attempts)


@pytest.mark.parametrize(("source", "reason"), [
    ("missed-call", "missed"), ("ami:abandon", "missed"), ("callback-failed", "callback"),
    ("agent", "agent"), ("csv:leads.csv", "lead"), ("", "lead")])
def test_an_outbound_whisper_says_why_which_attempt_and_the_number(source: str,
                                                                   reason: str) -> None:
    assert whisper_of(task(TaskKind.OUTBOUND, source, attempts=1), 4) == [
        "sound:acdkit/ob-whisper", f"sound:acdkit/ob-reason-{reason}",
        "sound:acdkit/ob-attempt", "number:2", "digits:0142"]


def test_a_callback_whisper_is_unchanged() -> None:
    assert whisper_of(task(TaskKind.CALLBACK), 4) == ["sound:acdkit/whisper-callback",
                                                       "digits:0142"]


def test_an_outbound_whisper_says_the_customer_name_first() -> None:
    assert whisper_of(task(TaskKind.OUTBOUND, "csv:leads.csv"), 4, ["sound:http://m/name.wav"]) \
        == ["sound:acdkit/ob-whisper", "sound:http://m/name.wav", "sound:acdkit/ob-reason-lead",
            "sound:acdkit/ob-attempt", "number:1", "digits:0142"]
