"""The SIPp answering peers behave as src/acdkit/labkit/sipp.py says, against the lab Asterisk:
agents answer (and say which agentN was called), ring without answering, hang up; customers
answer or are busy."""

from __future__ import annotations

import asyncio
import time

import pytest
from tests.lab.ariprobe import AriProbe, ari_probe

from acdkit.labkit.sipp import Peer, SipMessage, SippResult, agent_peer, caller, customer_peer

pytestmark = pytest.mark.lab


async def _originate(ari: AriProbe, endpoint: str, timeout: int = 10) -> str:
    answer = await ari.request("POST", "channels", endpoint=endpoint, app="acdkit",
                               timeout=timeout)
    return str(answer["id"])


def _wait_for(peer: Peer, method: str | int, *, sent: bool, timeout: float = 5.0) -> SipMessage:
    """The first message of ``method`` (or status) the peer sent/received, waiting for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in peer.messages():
            if m.sent == sent and (m.status == method if isinstance(method, int)
                                   else m.method == method):
                return m
        time.sleep(0.05)
    raise AssertionError(f"{peer.name} never {'sent' if sent else 'got'} {method}: "
                         f"{[(m.sent, m.first_line) for m in peer.messages()]}")


async def test_agent_peer_answers_and_reports_the_agent() -> None:
    with agent_peer() as agents:
        async with ari_probe() as ari:
            channel = await _originate(ari, "PJSIP/agent7")
            await ari.next_event("StasisStart", channel=channel)  # answered
            await ari.request("DELETE", f"channels/{channel}")
        [invite] = agents.wait_for_invites(1)
        _wait_for(agents, "BYE", sent=False)
    assert invite.user == "agent7"
    assert invite.call_id and invite.time > 0


async def test_agent_peer_rings_until_cancelled() -> None:
    with agent_peer(noanswer={"agent3"}) as agents:
        async with ari_probe() as ari:
            channel = await _originate(ari, "PJSIP/agent3", timeout=2)
            destroyed = await ari.next_event("ChannelDestroyed", channel=channel, timeout=8)
        _wait_for(agents, "CANCEL", sent=False)
        _wait_for(agents, 487, sent=True)
    assert destroyed["cause"] in (19, 21)  # no answer (Asterisk may say 'rejected' on timeout)
    assert [i.user for i in agents.invites()] == ["agent3"]


async def test_agent_peer_hangs_up_by_itself() -> None:
    with agent_peer(hangup="*", hangup_after=0.5) as agents:
        async with ari_probe() as ari:
            channel = await _originate(ari, "PJSIP/agent12")
            await ari.next_event("StasisStart", channel=channel)
            await ari.next_event("ChannelDestroyed", channel=channel, timeout=5)
        bye = _wait_for(agents, "BYE", sent=True)
        _wait_for(agents, 200, sent=False)
    assert bye.request_user  # sent to Asterisk's Contact


async def test_customer_peer_answers_and_is_busy() -> None:
    with customer_peer(busy={"4930111"}) as customers:
        async with ari_probe() as ari:
            busy = await _originate(ari, "PJSIP/4930111@pstn")
            destroyed = await ari.next_event("ChannelDestroyed", channel=busy)
            answered = await _originate(ari, "PJSIP/4930222@pstn")
            await ari.next_event("StasisStart", channel=answered)
            await ari.request("DELETE", f"channels/{answered}")
        invites = customers.wait_for_invites(2)
    assert destroyed["cause"] == 17  # user busy
    assert [i.user for i in invites] == ["4930111", "4930222"]


async def test_caller_and_agent_bridged_by_ari() -> None:
    with agent_peer() as agents:
        async with ari_probe() as ari:
            call = asyncio.create_task(asyncio.to_thread(
                caller("100", caller_id="4930555", hangup_after=None, timeout=30).run))
            try:
                inbound = (await ari.next_event("StasisStart", timeout=10))["channel"]["id"]
                await ari.request("POST", f"channels/{inbound}/answer")
                agent = await _originate(ari, "PJSIP/agent7")
                await ari.next_event("StasisStart", channel=agent)
                bridge = (await ari.request("POST", "bridges", type="mixing"))["id"]
                await ari.request("POST", f"bridges/{bridge}/addChannel",
                                  channel=f"{inbound},{agent}")
                await asyncio.sleep(1.0)
                await ari.request("DELETE", f"channels/{inbound}")
                await ari.request("DELETE", f"channels/{agent}")
                await ari.request("DELETE", f"bridges/{bridge}")
            finally:
                result: SippResult = await call
        _wait_for(agents, "BYE", sent=False)
    assert result.ok, result
    assert result.hung_up_by == "remote"
    assert not agents.open_calls()


def test_native_queue_rings_the_agents_and_one_takes_the_call() -> None:
    """Extension 300 (a plain Queue(sales), ringall over agent1-3): the peer answers all three,
    Asterisk keeps one and ends the others (BYE or CANCEL); every call ends cleanly."""
    with agent_peer(ring_after=0.3) as agents:
        result = caller("300", hangup_after=2.0, timeout=20).run()
        invites = agents.wait_for_invites(3)
        deadline = time.monotonic() + 5
        while agents.open_calls() and time.monotonic() < deadline:
            time.sleep(0.1)
        still_open = agents.open_calls()
    assert result.ok, result
    assert {i.user for i in invites} == {"agent1", "agent2", "agent3"}
    assert not still_open
