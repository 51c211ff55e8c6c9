"""SIPp's logs read back: the messages a SIPp process sent and received (``-trace_msg``), the
INVITEs a peer got, and how a run ended (exit code, ``-trace_stat`` counts)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

# ---- the message log ----------------------------------------------------------------------


@dataclass(frozen=True)
class SipMessage:
    """One SIP message as SIPp logged it (``-trace_msg``)."""

    time: float  # seconds since the epoch
    sent: bool
    first_line: str
    headers: Mapping[str, str]  # lower-case names, first occurrence

    @property
    def method(self) -> str | None:
        """The request method; None for a response."""
        return None if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        """The response code; None for a request."""
        parts = self.first_line.split(" ")
        return int(parts[1]) if self.first_line.startswith("SIP/2.0") else None

    @property
    def cseq_method(self) -> str:
        return self.headers.get("cseq", "").split(" ")[-1]

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")

    @property
    def request_user(self) -> str:
        """The user part of the Request-URI (``agent7`` in ``INVITE sip:agent7@...``)."""
        return _uri_user(self.first_line.split(" ")[1]) if self.method else ""


@dataclass(frozen=True)
class Invite:
    """A dialog-creating INVITE a peer received."""

    time: float
    user: str  # Request-URI user: agentN, or the outside number dialed
    call_id: str
    from_header: str
    from_user: str


_ENTRY = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)\s*$", re.M)
_URI_USER = re.compile(r"sips?:([^@;>]+)@")


def _uri_user(text: str) -> str:
    match = _URI_USER.search(text)
    return match.group(1) if match else ""


def _parse_entry(stamp: float, text: str) -> SipMessage | None:
    lines = text.strip("\n").split("\n")
    if len(lines) < 3 or "message" not in lines[0]:
        return None
    body = [line.rstrip("\r") for line in lines[1:]]
    while body and not body[0]:
        body.pop(0)
    headers: dict[str, str] = {}
    for line in body[1:]:
        if not line:
            break
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return SipMessage(stamp, " sent " in f" {lines[0]} ", body[0], headers)


def parse_message_log(text: str) -> list[SipMessage]:
    """Every message in a SIPp ``-trace_msg`` file, in order."""
    marks = list(_ENTRY.finditer(text))
    if not marks:
        return []
    messages = []
    ends = [m.start() for m in marks[1:]] + [len(text)]
    for mark, end in zip(marks, ends, strict=True):
        stamp = datetime.strptime(f"{mark[1]} {mark[2]}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
        message = _parse_entry(stamp, text[mark.end():end])
        if message:
            messages.append(message)
    return messages


def invites_of(messages: Iterable[SipMessage]) -> list[Invite]:
    """Received INVITEs that open a dialog, once per Call-ID (no re-INVITEs, no retransmits)."""
    seen: set[str] = set()
    invites = []
    for m in messages:
        fresh = m.method == "INVITE" and not m.sent and m.call_id not in seen
        if fresh and ";tag=" not in m.headers.get("to", ""):
            seen.add(m.call_id)
            sender = m.headers.get("from", "")
            invites.append(Invite(m.time, m.request_user, m.call_id, sender, _uri_user(sender)))
    return invites


# ---- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SippResult:
    """How a SIPp process ended, and what it sent and received."""

    returncode: int | None  # None: killed (stopped, or past its timeout)
    timed_out: bool
    successful: int
    failed: int
    messages: list[SipMessage]
    workdir: Path
    errors: str  # SIPp's stderr and error log, for assertion messages

    @property
    def ok(self) -> bool:
        """SIPp exited 0: every call went as its scenario says."""
        return self.returncode == 0 and not self.timed_out

    def find(self, what: str | int, *, sent: bool | None = None) -> list[SipMessage]:
        """Messages by method (``"BYE"``) or status (``200``), optionally by direction."""
        return [m for m in self.messages
                if (m.status == what if isinstance(what, int) else m.method == what)
                and (sent is None or m.sent == sent)]

    def first_time(self, what: str | int, *, sent: bool | None = None) -> float | None:
        found = self.find(what, sent=sent)
        return found[0].time if found else None

    @property
    def hung_up_by(self) -> str | None:
        """``"local"`` or ``"remote"``: who sent the first BYE; None without one."""
        byes = self.find("BYE")
        return None if not byes else "local" if byes[0].sent else "remote"

    def __str__(self) -> str:
        return (f"sipp rc={self.returncode} timed_out={self.timed_out} ok={self.successful} "
                f"failed={self.failed} dir={self.workdir}\n{self.errors[-2000:]}")


def stat_counts(path: Path) -> tuple[int, int]:
    """(successful, failed) calls from the last line of a ``-trace_stat`` CSV."""
    if not path.exists():
        return 0, 0
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(lines) < 2:
        return 0, 0
    row = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    return int(row.get("SuccessfulCall(C)", 0)), int(row.get("FailedCall(C)", 0))
