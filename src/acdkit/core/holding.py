"""When a caller on hold next needs attention: its position announcement, the overflow
offer, or the end of its longest wait (docs/architecture.md §5, "Flows").

The flow (ari/queue.py) sleeps until ``next_wake`` or the channel's next event, whichever
comes first, then does what ``due`` says; a caller costs nothing between those moments,
whatever the number of callers on hold.

- The announcement: every ``announce_every`` s, the first after ``announce_every`` s in line.
- The offer: first ``first_after`` s in line, then ``repeat_every`` s after the last one;
  never when no rule of ``[overflow]`` can ever make it (``offers`` is false).
- The longest wait: ``max_wait`` s in line.

Something due that was looked at and not done (the queue could not be read, no rule said
"offer" yet, the task was taken when its wait ran out) is looked at again ``retry`` s after,
as long as it stays due: a rule that says "offer" is heard within ``retry`` s.
"""

from __future__ import annotations

from dataclasses import dataclass

from acdkit.core.overflow import OverflowRule

INF = float("inf")


@dataclass(frozen=True)
class HoldTimers:
    """The timers of ``[queue]`` and ``[overflow]`` for one caller on hold."""

    announce_every: float
    max_wait: float
    first_after: float
    repeat_every: float
    offers: bool  # some overflow rule may make an offer (``can_offer``)
    retry: float = 1.0


@dataclass(frozen=True)
class Held:
    """What happened so far to one caller on hold (times in seconds, the clock's)."""

    enqueued_at: float
    last_announce: float | None = None
    last_offer: float | None = None
    looked_at: float | None = None  # the last time the flow looked at what was due


@dataclass(frozen=True)
class Due:
    """What is due now; false as a whole when nothing is."""

    expire: bool = False
    offer: bool = False
    announce: bool = False

    def __bool__(self) -> bool:
        return self.expire or self.offer or self.announce


def can_offer(rule: OverflowRule) -> bool:
    """True when some condition of ``rule`` may make an offer (overflow.offer_reason)."""
    return (rule.when_no_agents or rule.when_out_of_hours or rule.position_over is not None
            or rule.wait_over is not None)


def timers(announce_every: float, max_wait: float, rule: OverflowRule) -> HoldTimers:
    """The timers of a caller held under ``rule``; ``retry`` is one second, or
    ``announce_every`` when shorter."""
    return HoldTimers(announce_every, max_wait, rule.first_after, rule.repeat_every,
                      can_offer(rule), min(1.0, announce_every))


def _times(t: HoldTimers, h: Held) -> tuple[float, float, float]:
    """When expiry, the offer and the announcement fall due (an offer that cannot be made:
    never), each moved to ``retry`` s after the last look when it was due then already."""
    expire = h.enqueued_at + t.max_wait
    offer = max(h.enqueued_at + t.first_after,
                -INF if h.last_offer is None else h.last_offer + t.repeat_every)
    announce = (h.enqueued_at if h.last_announce is None else h.last_announce) + t.announce_every

    def again(at: float) -> float:
        return at if h.looked_at is None or at > h.looked_at else h.looked_at + t.retry

    return again(expire), again(offer if t.offers else INF), again(announce)


def due(t: HoldTimers, h: Held, now: float) -> Due:
    """What is due at ``now``."""
    expire, offer, announce = _times(t, h)
    return Due(expire=now >= expire, offer=now >= offer, announce=now >= announce)


def next_wake(t: HoldTimers, h: Held) -> float:
    """The first moment something falls due: ``due(t, h, now)`` is false for every ``now``
    before it and true at it. After a look (``looked_at``), it is later than that look."""
    return min(_times(t, h))
