"""When a `serve` holding its node's lease may still act, and when it tries to renew it.

The lease (store/lease.py) lives ``ttl`` seconds in Redis from the moment Redis ran the last
renew. The holder cannot know that moment, only when it *sent* the renew, which is earlier:
so it counts its own deadline from the send, on its monotonic clock, and stops ``margin``
seconds before the lease could end in Redis. The margin pays for what the holder still does
while it stops (closing its ARI socket, cancelling its flows), for a late wake-up of its
event loop and for clocks that run at slightly different rates. A standby takes the lease
only once Redis let it expire, so it never acts while the old holder may (docs/standby.md).

All times here are seconds on one monotonic clock; nothing here reads a clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from acdkit.core.errors import ConfigError

NODE_ID_LENGTH = 32
_NODE_ID = re.compile(rf"^[A-Za-z0-9_-]{{1,{NODE_ID_LENGTH}}}$")
_NOT_NODE = re.compile(r"[^A-Za-z0-9_-]")
RETRIES_PER_RENEW = 4  # after a failed renew, try again this many times per renew interval


@dataclass(frozen=True)
class LeaseTerms:
    """``ttl``: how long the lease lives unrenewed in Redis; ``margin``: how long before
    that end an unrenewed holder stops; ``poll``: how often a standby asks for the lease.
    The holder renews every ``ttl / 3``."""

    ttl: float = 5.0
    margin: float = 1.5
    poll: float = 1.0

    def __post_init__(self) -> None:
        if not 0.3 <= self.ttl <= 600:
            raise ConfigError("node.lease_ttl", "must be from 0.3 to 600 seconds")
        if not 0 < self.margin <= self.ttl / 2:
            raise ConfigError("node.lease_margin", "must be above 0 and at most half of "
                              "node.lease_ttl (the holder must have time to renew)")
        if not 0 < self.poll <= self.ttl:
            raise ConfigError("node.standby_poll", "must be above 0 and at most node.lease_ttl")

    @property
    def renew_every(self) -> float:
        return self.ttl / 3

    @property
    def ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))


def deadline(terms: LeaseTerms, renewed_at: float) -> float:
    """The last moment the holder may act, given when it sent its last confirmed renew (or
    the acquisition) at ``renewed_at``."""
    return renewed_at + terms.ttl - terms.margin


def may_act(terms: LeaseTerms, renewed_at: float, now: float) -> bool:
    """True while the holder whose last confirmed renew was sent at ``renewed_at`` may
    still act at ``now``: strictly before its ``deadline``."""
    return now < deadline(terms, renewed_at)


def next_renew(terms: LeaseTerms, renewed_at: float, now: float, failed: bool) -> float:
    """When to send the next renew: ``renew_every`` after the last confirmed one, or soon
    after a failed try (``failed``); never later than the deadline, where the holder stops."""
    due = renewed_at + terms.renew_every
    if failed:
        due = max(due, now + terms.renew_every / RETRIES_PER_RENEW)
    return min(due, deadline(terms, renewed_at))


def node_id_from_host(host: str) -> str:
    """A node id from a host name: its first label, any other character as ``-``, at most
    ``NODE_ID_LENGTH`` characters (``"pbx-a.example.com"`` → ``"pbx-a"``); ``"node"`` when
    nothing is left."""
    label = host.strip().split(".", 1)[0]
    return _NOT_NODE.sub("-", label)[:NODE_ID_LENGTH] or "node"


def check_node_id(value: str) -> str:
    """``value`` if it is a node id (1-32 of A-Z a-z 0-9 _ -); else ``ConfigError``."""
    if not _NODE_ID.fullmatch(value):
        raise ConfigError("node.id", f"must be 1-{NODE_ID_LENGTH} characters of "
                          "A-Z a-z 0-9 _ -")
    return value
