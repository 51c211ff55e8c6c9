"""Protocols the core's services need from the outside world.

Adapters (Redis, ARI, RQ, speech engines) implement these; ``acdkit.testing`` has fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from acdkit.core.tasks import Task


class Clock(Protocol):
    """Where time comes from; the core never reads a clock itself."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class JobQueue(Protocol):
    """Slow or retryable work handed to workers (RQ in production)."""

    def enqueue(self, queue: str, func: str, *args: str, job_id: str | None = None,
                at: float | None = None) -> str:
        """Enqueue ``func`` (a dotted path) with string ids as arguments; return the job id.

        ``at`` (epoch seconds) delays the job; a ``job_id`` already queued is not queued twice.
        """
        ...


class Transcriber(Protocol):
    """Offline speech recognition of a telephone recording."""

    name: str

    def transcribe(self, audio: Path) -> tuple[str, float]:
        """Return the transcript of a WAV file and a confidence in 0..1.

        Raises ``InvalidInput`` when the file is empty, corrupt or not audio.
        """
        ...


class Connector(Protocol):
    """What the dispatcher calls once it has reserved an agent for a task."""

    async def connect(self, agent_id: str, task: Task) -> None:
        """Ring the agent and connect it to the task's customer (agent first)."""
        ...


@dataclass(frozen=True)
class MessageResult:
    """What became of one text message: ``sent`` when the far end (or the gateway) took
    it, else refused or unreachable (the caller of ``Messenger.send`` then calls instead);
    ``detail`` says why, for the history (``405 Method Not Allowed``, ``timeout``)."""

    sent: bool
    detail: str = ""


class Messenger(Protocol):
    """Text messages to a customer's number (docs/self-service.md): SIP MESSAGE through
    Asterisk, an SMS gateway, a file for tests. Implementations live outside the core
    (acdkit/messaging.py); a gateway plugs in by this interface."""

    name: str  # for the history: "sip", "ari", "file", "sms:<provider>", ...

    async def send(self, number: str, text: str) -> MessageResult:
        """Send ``text`` (UTF-8, at most ~1000 bytes) to ``number`` (E.164, validated by
        the number policy). Never raises for a refusal: returns ``MessageResult(False,
        why)``; raises ``InvalidInput`` for a number or text it cannot carry."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        import time

        return time.time()
