"""Queue members' availability from AMI events: ``QueueMember`` (the ``QueueStatus`` reply),
``QueueMemberStatus``/``QueueMemberAdded``/``QueueMemberPause``/``QueueMemberRemoved`` and
``DeviceStateChange``. No I/O: fed event by event (tests replay recorded transcripts)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

# app_queue's member Status codes (AST_DEVICE_*), as QueueMember* events carry them.
_STATUS_NAMES = {"0": "UNKNOWN", "1": "NOT_INUSE", "2": "INUSE", "3": "BUSY", "4": "INVALID",
                 "5": "UNAVAILABLE", "6": "RINGING", "7": "RINGINUSE", "8": "ONHOLD"}
_FREE = frozenset({"NOT_INUSE"})
_MEMBER_EVENTS = frozenset({"QueueMember", "QueueMemberStatus", "QueueMemberAdded",
                            "QueueMemberPause", "QueueMemberPaused"})


@dataclass(frozen=True)
class Member:
    queue: str
    name: str  # MemberName (the lab: agent1)
    interface: str  # what Queue() dials (PJSIP/agent1)
    state_interface: str  # whose device state counts
    state: str = "UNKNOWN"  # device state name
    paused: bool = False

    @property
    def free(self) -> bool:
        return self.state in _FREE and not self.paused


class MemberBoard:
    """Members by queue, and the latest device state per state interface."""

    def __init__(self) -> None:
        self._members: dict[tuple[str, str], Member] = {}

    def apply(self, event: Mapping[str, str]) -> Member | None:
        """Update from one AMI event (header names as Asterisk sends them); return the member
        it changed, if any."""
        name = event.get("Event", "")
        if name in _MEMBER_EVENTS:
            return self._member(event)
        if name == "QueueMemberRemoved":
            key = (event.get("Queue", ""), _interface(event))
            return self._members.pop(key, None)
        if name == "DeviceStateChange":
            self._device(event.get("Device", ""), event.get("State", "UNKNOWN"))
        return None

    def _member(self, event: Mapping[str, str]) -> Member | None:
        queue, interface = event.get("Queue", ""), _interface(event)
        if not queue or not interface:
            return None
        old = self._members.get((queue, interface))
        status = event.get("Status")
        member = Member(
            queue, event.get("MemberName") or event.get("Name") or (old.name if old else ""),
            interface, event.get("StateInterface") or interface,
            _STATUS_NAMES.get(status, old.state if old else "UNKNOWN") if status is not None
            else (old.state if old else "UNKNOWN"),
            event.get("Paused", "1" if old and old.paused else "0") == "1")
        self._members[(queue, interface)] = member
        return member

    def _device(self, device: str, state: str) -> None:
        for key, member in list(self._members.items()):
            if member.state_interface == device:
                self._members[key] = replace(member, state=state)

    def clear(self) -> None:
        """Forget everything (after a reconnect, before ``QueueStatus`` tells it again)."""
        self._members.clear()

    def members(self, queue: str) -> list[Member]:
        return sorted((m for m in self._members.values() if m.queue == queue),
                      key=lambda m: m.name)

    def free(self, queue: str) -> list[Member]:
        """The members of ``queue`` that are not paused and whose device is not in use."""
        return [m for m in self.members(queue) if m.free]

    def queues(self) -> set[str]:
        return {m.queue for m in self._members.values()}


def _interface(event: Mapping[str, str]) -> str:
    return event.get("Interface") or event.get("Location") or ""
