"""Calling a customer back into the Stasis app (a callback attempt, a reply delivery), and
what the end of a call that was never answered means."""

from __future__ import annotations

from acdkit.ari import events as ev
from acdkit.ari.agents import answered
from acdkit.ari.control import AriControl
from acdkit.ari.session import ChannelGone, Session
from acdkit.config import CenterSettings
from acdkit.core.callbacks import DialOutcome
from acdkit.core.numbers import dial_string

# Q.850 causes Asterisk reports when an outgoing call ends before answer (seen on 22.10.1).
_BUSY = frozenset({17})
_NO_ANSWER = frozenset({16, 18, 19, 20, 31})


def outcome_of_cause(cause: int) -> DialOutcome:
    if cause in _BUSY:
        return DialOutcome.BUSY
    if cause in _NO_ANSWER:
        return DialOutcome.NO_ANSWER
    return DialOutcome.FAILED


async def ring_customer(control: AriControl, customer: Session, number: str,
                        center: CenterSettings, ring_timeout: float) -> DialOutcome:
    """Call ``number`` on the trunk with the center's caller ID, on ``customer``'s fixed
    channel id (a second dial of the same attempt is refused by Asterisk), for twice
    ``ring_timeout``; the outcome of the call."""
    timeout = ring_timeout * 2
    try:
        created = await control.originate(
            dial_string(number, center.trunk), customer.channel_id,
            app_args=f"callback-customer,{customer.channel_id}",
            caller_id=center.caller_id or None, timeout=int(timeout))
        if created is None:
            return DialOutcome.FAILED
        if await answered(customer, timeout + 5) is None:
            await control.hangup(customer.channel_id)
            return DialOutcome.NO_ANSWER
        return DialOutcome.ANSWERED
    except ChannelGone:
        return _cause_outcome(customer)


def _cause_outcome(customer: Session) -> DialOutcome:
    while not customer.queue.empty():
        event = customer.queue.get_nowait()
        if isinstance(event, ev.ChannelDestroyed):
            return outcome_of_cause(event.cause)
    return DialOutcome.NO_ANSWER
