"""DTMF from SIPp reaches Asterisk digit by digit, in order (DESIGN.md section 7: the shipped
one-digit pcaps lose the second digit of "42"; tests/sipp/dtmfpcap.py writes one pcap per string).
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.lab.ariprobe import AriProbe, ari_probe
from tests.lab.sipp import SippResult, agent_peer, caller

pytestmark = pytest.mark.lab


async def _answer_and_read(ari: AriProbe, count: int) -> tuple[str, list[str]]:
    """Answer the next caller in Stasis; the channel id and the first ``count`` digits it sends."""
    start = await ari.next_event("StasisStart", timeout=10)
    channel = start["channel"]["id"]
    await ari.request("POST", f"channels/{channel}/answer")
    digits = []
    for _ in range(count):
        event = await ari.next_event("ChannelDtmfReceived", channel=channel, timeout=10)
        digits.append(event["digit"])
    return channel, digits


async def _no_more_digits(ari: AriProbe, channel: str, wait: float = 0.6) -> list[str]:
    extra: list[str] = []
    with contextlib.suppress(TimeoutError):
        while True:
            event = await ari.next_event("ChannelDtmfReceived", channel=channel, timeout=wait)
            extra.append(event["digit"])
    return extra


@pytest.mark.parametrize("digits", ["42", "0123456789*#ABCD", "1ww2"])
async def test_caller_digits_arrive_in_order(digits: str) -> None:
    wanted = [d for d in digits if d != "w"]
    async with ari_probe() as ari:
        call = asyncio.create_task(asyncio.to_thread(
            caller("100", dtmf=digits, hangup_after=None, timeout=30).run))
        try:
            channel, got = await _answer_and_read(ari, len(wanted))
            extra = await _no_more_digits(ari, channel)
            await ari.request("DELETE", f"channels/{channel}")
        finally:
            result: SippResult = await call
    assert got == wanted and extra == []
    assert result.ok, result
    assert result.hung_up_by == "remote"


async def test_agent_presses_star() -> None:
    """The agent peer's dtmf variant: agent5 answers, then sends '*'."""
    with agent_peer(dtmf_users={"agent5"}, dtmf="w*") as agents:
        async with ari_probe() as ari:
            channel = (await ari.request("POST", "channels", endpoint="PJSIP/agent5",
                                         app="acdkit", timeout=10))["id"]
            await ari.next_event("StasisStart", channel=channel)
            event = await ari.next_event("ChannelDtmfReceived", channel=channel)
            await ari.request("DELETE", f"channels/{channel}")
        assert event["digit"] == "*"
        assert [i.user for i in agents.invites()] == ["agent5"]
