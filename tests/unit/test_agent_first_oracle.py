"""The agent-first oracle of the lab tests (tests/lab/observer.py): it reads Asterisk's own
event order, so it flags a customer leg made before its agent leg was up, and only that.
The run that once failed under load (SIPp stamps: agent INVITE .613, customer INVITE .622,
agent 200 OK .6226) is what Asterisk reports as agent Up, then customer created."""

from __future__ import annotations

from tests.lab.observer import Observed


def observed(*events: tuple[str, str, str]) -> Observed:
    seen = Observed()
    for kind, channel, state in events:
        seen.add({"type": kind, "channel": {"id": channel, "state": state}})
    return seen


def test_a_customer_leg_after_the_agent_is_up_is_agent_first() -> None:
    seen = observed(("ChannelCreated", "cb-t1-1-a", "Down"),
                    ("ChannelStateChange", "cb-t1-1-a", "Ringing"),
                    ("ChannelStateChange", "cb-t1-1-a", "Up"),
                    ("StasisStart", "cb-t1-1-a", "Up"),
                    ("ChannelCreated", "cb-t1-1-c", "Down"))
    assert seen.customers_dialed_early() == []
    assert seen.customer_legs() == ["cb-t1-1-c"]


def test_a_customer_leg_while_the_agent_rings_is_flagged() -> None:
    seen = observed(("ChannelCreated", "cb-t1-1-a", "Down"),
                    ("ChannelStateChange", "cb-t1-1-a", "Ringing"),
                    ("ChannelCreated", "cb-t1-1-c", "Down"),
                    ("ChannelStateChange", "cb-t1-1-a", "Up"))
    assert seen.customers_dialed_early() == ["cb-t1-1-c"]


def test_an_earlier_attempt_up_does_not_cover_the_next_one() -> None:
    seen = observed(("ChannelStateChange", "cb-t1-1-a", "Up"),
                    ("ChannelStateChange", "cb-t1-2-a", "Ringing"),
                    ("ChannelCreated", "cb-t1-2-c", "Down"))
    assert seen.customers_dialed_early() == ["cb-t1-2-c"]
