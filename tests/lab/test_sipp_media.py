"""Media from the SIPp caller reaches Asterisk: DTMF digit by digit, in order (docs/lab.md
"SIPp peers": the shipped one-digit pcaps lose the second digit of "42";
acdkit.labkit.dtmfpcap writes one pcap per string), and speech (tests/sipp/audiopcap.py)
that ARI can record.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import io
import math
import uuid
import wave

import pytest
from tests.lab.ariprobe import AriProbe, ari_probe
from tests.sipp.audiopcap import speech_pcap

from acdkit.labkit.sipp import SippResult, agent_peer, caller

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


def _wav_stats(data: bytes) -> tuple[float, float]:
    """(seconds, RMS) of a 16-bit mono WAV."""
    with wave.open(io.BytesIO(data)) as wav:
        samples = array.array("h", wav.readframes(wav.getnframes()))
        seconds = wav.getnframes() / wav.getframerate()
    rms = math.sqrt(sum(s * s for s in samples) / max(len(samples), 1))
    return seconds, rms


async def test_speech_is_recorded_until_pound() -> None:
    """Speech, then '#': ARI records it on the caller's channel and the '#' ends the recording."""
    pcap = speech_pcap("my printer is broken, please call me back", before="ww", after="#")
    name = f"acdkit-sipp-test-{uuid.uuid4().hex[:8]}"
    async with ari_probe() as ari:
        call = asyncio.create_task(asyncio.to_thread(
            caller("100", media=pcap, hangup_after=None, timeout=30).run))
        try:
            start = await ari.next_event("StasisStart", timeout=10)
            channel = start["channel"]["id"]
            await ari.request("POST", f"channels/{channel}/answer")
            await ari.request("POST", f"channels/{channel}/record", name=name, format="wav",
                              maxDurationSeconds=15, terminateOn="#", beep="false")
            finished = await ari.next_event("RecordingFinished", "RecordingFailed", timeout=20)
            data = await ari.raw("GET", f"recordings/stored/{name}/file")
            await ari.request("DELETE", f"recordings/stored/{name}")
            await ari.request("DELETE", f"channels/{channel}")
        finally:
            result: SippResult = await call
    seconds, rms = _wav_stats(data)
    assert finished["type"] == "RecordingFinished", finished
    assert 2.0 < seconds < 8.0  # ~1 s of silence, the sentence, then '#' stops it
    assert rms > 300  # speech, not silence
    assert result.ok, result
