"""Overflow: when a waiting caller is offered a callback (or a voice request), and what the
keys of the offer mean.

Offer when the estimated wait exceeds ``wait_over`` seconds, the position exceeds
``position_over``, no agent of the skill is logged in, or the center is out of hours; repeat
the offer every ``repeat_every`` seconds while the caller keeps waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OfferChoice(StrEnum):
    INSTANT_CALLBACK = "instant_callback"  # 1: called back as soon as an agent is free
    SCHEDULED_CALLBACK = "scheduled_callback"  # 2: called back at a time keyed as HHMM
    VOICE_REQUEST = "voice_request"  # 3: leave a spoken request
    KEEP_WAITING = "keep_waiting"  # anything else, or nothing


_KEYS = {"1": OfferChoice.INSTANT_CALLBACK, "2": OfferChoice.SCHEDULED_CALLBACK,
         "3": OfferChoice.VOICE_REQUEST}


@dataclass(frozen=True)
class OverflowRule:
    wait_over: float | None = 60.0  # seconds of estimated wait; None disables
    position_over: int | None = 5  # callers ahead; None disables
    when_no_agents: bool = True
    when_out_of_hours: bool = True
    first_after: float = 5.0  # seconds of waiting before the first offer
    repeat_every: float = 60.0
    avg_handle: float = 180.0  # seconds an agent spends per call, for the estimate


@dataclass(frozen=True)
class QueueView:
    """What the caller's queue looks like now."""

    position: int  # callers ahead of this one
    agents_logged_in: int  # agents of the skill who are logged in (any state but logged out)
    in_hours: bool = True
    waited: float = 0.0  # seconds this caller has waited


def estimated_wait(view: QueueView, rule: OverflowRule) -> float:
    """Seconds until an agent is expected: each logged-in agent serves a caller per
    ``avg_handle``; with no agent logged in the wait is unbounded (``inf``)."""
    if view.agents_logged_in <= 0:
        return float("inf")
    return (view.position + 1) * rule.avg_handle / view.agents_logged_in


def offer_reason(rule: OverflowRule, view: QueueView, last_offer: float | None,
                 now: float) -> str | None:
    """Why to make the offer now (``no_agents``, ``out_of_hours``, ``position``, ``wait``),
    or ``None`` when not yet: too early, offered too recently, or no rule says so."""
    if view.waited < rule.first_after:
        return None
    if last_offer is not None and now - last_offer < rule.repeat_every:
        return None
    if rule.when_no_agents and view.agents_logged_in == 0:
        return "no_agents"
    if rule.when_out_of_hours and not view.in_hours:
        return "out_of_hours"
    if rule.position_over is not None and view.position > rule.position_over:
        return "position"
    if rule.wait_over is not None and estimated_wait(view, rule) > rule.wait_over:
        return "wait"
    return None


def choice(key: str | None) -> OfferChoice:
    """The meaning of a key pressed after the offer (no key: keep waiting)."""
    return _KEYS.get(key or "", OfferChoice.KEEP_WAITING)
