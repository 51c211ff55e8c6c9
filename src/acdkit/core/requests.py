"""Voice requests: a caller's spoken request, its transcript, the agent's reply and its
delivery, as a small state machine next to the request's task in the pool.

::

    transcribing ──transcribed──► transcribed ──┐
         │                                      ├─reply─► replied ─delivered─► delivered
         └──transcription_failed─► untranscribed┘            │
                                                             └─delivery_failed─► undelivered
    any state but closed ──close──► closed;  a new reply after delivery (or its failure) is
    allowed: replied again.

The task (kind ``voice_request``) carries who works on it; this record carries what was said
and answered. Times are epoch seconds passed in (the core reads no clock).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from acdkit.core.callbacks import DialOutcome, RetryPolicy
from acdkit.core.errors import InvalidTransition


class RequestStatus(StrEnum):
    TRANSCRIBING = "transcribing"
    TRANSCRIBED = "transcribed"
    UNTRANSCRIBED = "untranscribed"  # transcription failed: the audio alone serves
    REPLIED = "replied"  # a reply waits for delivery
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"  # every delivery attempt failed
    CLOSED = "closed"


class RequestEvent(StrEnum):
    TRANSCRIBED = "transcribed"
    TRANSCRIPTION_FAILED = "transcription_failed"
    REPLY = "reply"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    CLOSE = "close"


class ReplyKind(StrEnum):
    NONE = ""
    VOICE = "voice"  # recorded by the agent on the phone
    TEXT = "text"  # typed, spoken to the customer by TTS


_S = RequestStatus
_OPEN = frozenset(set(RequestStatus) - {RequestStatus.CLOSED})
_ALLOWED: dict[RequestEvent, frozenset[RequestStatus]] = {
    RequestEvent.TRANSCRIBED: frozenset({_S.TRANSCRIBING}),
    RequestEvent.TRANSCRIPTION_FAILED: frozenset({_S.TRANSCRIBING}),
    RequestEvent.REPLY: frozenset({_S.TRANSCRIBING, _S.TRANSCRIBED, _S.UNTRANSCRIBED,
                                   _S.REPLIED, _S.DELIVERED, _S.UNDELIVERED}),
    RequestEvent.DELIVERED: frozenset({_S.REPLIED}),
    RequestEvent.DELIVERY_FAILED: frozenset({_S.REPLIED}),
    RequestEvent.CLOSE: _OPEN,
}
_TARGET = {RequestEvent.TRANSCRIBED: _S.TRANSCRIBED,
           RequestEvent.TRANSCRIPTION_FAILED: _S.UNTRANSCRIBED, RequestEvent.REPLY: _S.REPLIED,
           RequestEvent.DELIVERED: _S.DELIVERED, RequestEvent.DELIVERY_FAILED: _S.UNDELIVERED,
           RequestEvent.CLOSE: _S.CLOSED}


@dataclass(frozen=True)
class VoiceRequest:
    """What a caller asked and what was answered. ``audio`` is the file name of the caller's
    recording in the configured directory; ``reply_audio`` that of a spoken reply."""

    task_id: str
    ref: str  # the reference number the caller heard
    number: str  # E.164 to deliver the reply to
    skill: str
    created_at: float
    audio: str
    status: RequestStatus = RequestStatus.TRANSCRIBING
    source: str = ""
    transcript: str = ""
    confidence: float | None = None
    engine: str = ""
    error: str = ""  # why the transcription (or the delivery) failed
    reply_kind: ReplyKind = ReplyKind.NONE
    reply_text: str = ""
    reply_audio: str = ""
    replied_by: str = ""
    deliveries: int = 0  # delivery calls placed for the current reply
    updated_at: float = 0.0
    addenda: str = ""  # the caller's later additions: audio file names, comma-separated


def transition(request: VoiceRequest, event: RequestEvent, now: float, *,
               transcript: str = "", confidence: float | None = None, engine: str = "",
               error: str = "", reply_kind: ReplyKind = ReplyKind.NONE, reply_text: str = "",
               reply_audio: str = "", replied_by: str = "") -> VoiceRequest:
    """Return ``request`` after ``event`` at ``now``.

    Raises ``InvalidTransition`` when ``event`` is not allowed in its status, or a ``REPLY``
    carries neither text nor audio (or the wrong one for its kind).
    """
    if request.status not in _ALLOWED[event]:
        raise InvalidTransition("voice request", request.status, event)
    after = replace(request, status=_TARGET[event], updated_at=now)
    if event is RequestEvent.TRANSCRIBED:
        return replace(after, transcript=transcript, confidence=confidence, engine=engine,
                       error="")
    if event is RequestEvent.TRANSCRIPTION_FAILED:
        return replace(after, engine=engine, error=error or "transcription failed")
    if event is RequestEvent.REPLY:
        wanted = reply_text.strip() if reply_kind is ReplyKind.TEXT else reply_audio
        if reply_kind is ReplyKind.NONE or not wanted:
            raise InvalidTransition("voice request", request.status, "reply without content")
        return replace(after, reply_kind=reply_kind, reply_text=reply_text.strip(),
                       reply_audio=reply_audio, replied_by=replied_by, deliveries=0, error="")
    if event is RequestEvent.DELIVERY_FAILED:
        return replace(after, error=error or "not delivered")
    return after


def after_delivery(request: VoiceRequest, outcome: DialOutcome, now: float,
                   policy: RetryPolicy) -> tuple[RequestEvent | None, float | None]:
    """What follows a delivery call that ended with ``outcome`` (``request.deliveries``
    counts it already): ``(DELIVERED, None)``, a retry ``(None, due_at)``, or
    ``(DELIVERY_FAILED, None)`` once ``policy.max_attempts`` calls were placed."""
    if outcome is DialOutcome.ANSWERED:
        return RequestEvent.DELIVERED, None
    if request.deliveries >= policy.max_attempts:
        return RequestEvent.DELIVERY_FAILED, None
    return None, now + policy.interval(request.deliveries)
