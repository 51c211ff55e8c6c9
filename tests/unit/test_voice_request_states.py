"""The voice request state machine (core/requests.py) and its delivery retries."""

from __future__ import annotations

import pytest

from acdkit.core.callbacks import DialOutcome, RetryPolicy
from acdkit.core.errors import InvalidTransition
from acdkit.core.requests import (
    ReplyKind,
    RequestEvent,
    RequestStatus,
    VoiceRequest,
    after_delivery,
    transition,
)

T0 = 1_800_000_000.0


def new() -> VoiceRequest:
    return VoiceRequest(task_id="t1", ref="12345678", number="+12125550123", skill="sales",
                        created_at=T0, audio="t1.wav")


def test_the_happy_path_from_recording_to_delivery() -> None:
    r = transition(new(), RequestEvent.TRANSCRIBED, T0 + 1, transcript="printer broken",
                   confidence=0.8, engine="whisper")
    assert (r.status, r.transcript, r.confidence, r.engine) == (
        RequestStatus.TRANSCRIBED, "printer broken", 0.8, "whisper")
    r = transition(r, RequestEvent.REPLY, T0 + 2, reply_kind=ReplyKind.TEXT,
                   reply_text="  on Monday ", replied_by="1")
    assert (r.status, r.reply_text, r.replied_by) == (RequestStatus.REPLIED, "on Monday", "1")
    r = transition(r, RequestEvent.DELIVERED, T0 + 3)
    assert r.status is RequestStatus.DELIVERED and r.updated_at == T0 + 3
    r = transition(r, RequestEvent.CLOSE, T0 + 4)
    assert r.status is RequestStatus.CLOSED


def test_a_failed_transcription_keeps_the_audio_and_can_still_be_answered() -> None:
    r = transition(new(), RequestEvent.TRANSCRIPTION_FAILED, T0, error="the audio is empty")
    assert r.status is RequestStatus.UNTRANSCRIBED
    assert r.audio == "t1.wav" and r.error == "the audio is empty"
    r = transition(r, RequestEvent.REPLY, T0, reply_kind=ReplyKind.VOICE, reply_audio="r.wav")
    assert r.status is RequestStatus.REPLIED and r.reply_audio == "r.wav"


@pytest.mark.parametrize(("status", "event"), [
    (RequestStatus.TRANSCRIBED, RequestEvent.TRANSCRIBED),
    (RequestStatus.TRANSCRIBED, RequestEvent.DELIVERED),
    (RequestStatus.CLOSED, RequestEvent.REPLY),
    (RequestStatus.CLOSED, RequestEvent.CLOSE),
    (RequestStatus.DELIVERED, RequestEvent.DELIVERY_FAILED),
])
def test_moves_that_make_no_sense_are_refused(status: RequestStatus,
                                              event: RequestEvent) -> None:
    from dataclasses import replace

    with pytest.raises(InvalidTransition):
        transition(replace(new(), status=status), event, T0, reply_kind=ReplyKind.TEXT,
                   reply_text="x")


@pytest.mark.parametrize("changes", [{}, {"reply_kind": ReplyKind.TEXT, "reply_text": "  "},
                                     {"reply_kind": ReplyKind.VOICE}])
def test_an_empty_reply_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidTransition):
        transition(new(), RequestEvent.REPLY, T0, **changes)  # type: ignore[arg-type]


def test_a_new_reply_after_delivery_starts_its_calls_again() -> None:
    r = transition(new(), RequestEvent.REPLY, T0, reply_kind=ReplyKind.TEXT, reply_text="a")
    from dataclasses import replace

    r = transition(replace(r, deliveries=2), RequestEvent.DELIVERY_FAILED, T0)
    assert r.status is RequestStatus.UNDELIVERED
    r = transition(r, RequestEvent.REPLY, T0, reply_kind=ReplyKind.TEXT, reply_text="b")
    assert (r.status, r.deliveries, r.error) == (RequestStatus.REPLIED, 0, "")


def test_delivery_retries_by_the_callback_policy_then_gives_up() -> None:
    from dataclasses import replace

    policy = RetryPolicy(max_attempts=3, intervals=(60.0, 300.0))
    r = replace(new(), status=RequestStatus.REPLIED)
    assert after_delivery(replace(r, deliveries=1), DialOutcome.ANSWERED, T0, policy) == (
        RequestEvent.DELIVERED, None)
    assert after_delivery(replace(r, deliveries=1), DialOutcome.NO_ANSWER, T0, policy) == (
        None, T0 + 60)
    assert after_delivery(replace(r, deliveries=2), DialOutcome.BUSY, T0, policy) == (
        None, T0 + 300)
    assert after_delivery(replace(r, deliveries=3), DialOutcome.NO_ANSWER, T0, policy) == (
        RequestEvent.DELIVERY_FAILED, None)
