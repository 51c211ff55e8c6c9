"""tests/sipp/audiopcap.py: G.711 u-law in pure Python, and speech pcaps with DTMF around them."""

from __future__ import annotations

import math
import wave
from array import array
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.sipp.audiopcap import read_wav, ulaw_decode, ulaw_encode, write_audio_pcap

from acdkit.labkit.dtmfpcap import PCMU_PT, digits_of, events_of, read_dtmf_pcap


def _sine_wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> array[int]:
    samples = array("h", (int(8000 * math.sin(2 * math.pi * 440 * i / rate))
                          for i in range(int(seconds * rate))))
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return samples


def test_known_ulaw_values() -> None:
    assert ulaw_encode(0) == 0xFF  # PCMU silence
    assert ulaw_encode(32767) == 0x80 and ulaw_encode(-32768) == 0x00
    assert ulaw_decode(0xFF) == 0 and ulaw_decode(0x80) == 32124 and ulaw_decode(0x00) == -32124


def test_decode_encode_is_identity_on_codes() -> None:
    assert all(ulaw_encode(ulaw_decode(code)) == code for code in range(256) if code != 0x7F)


@given(st.integers(-32635, 32635))
def test_round_trip_error_is_within_one_step(sample: int) -> None:
    exponent = ((ulaw_encode(sample) >> 4) & 0x07) ^ 0x07  # codes are sent inverted
    step = 1 << (exponent + 3)  # the quantization step of that segment
    assert abs(ulaw_decode(ulaw_encode(sample)) - sample) <= step


def test_wav_to_pcap_keeps_the_audio(tmp_path: Path) -> None:
    samples = _sine_wav(tmp_path / "a.wav")
    packets = read_dtmf_pcap(write_audio_pcap(tmp_path / "a.wav", tmp_path / "a.pcap"))
    assert len(packets) == 25 and {p.payload_type for p in packets} == {PCMU_PT}
    decoded = [ulaw_decode(b) for p in packets for b in p.payload]
    assert max(abs(a - b) for a, b in zip(decoded, samples, strict=True)) < 300
    assert [b.timestamp - a.timestamp for a, b in pairwise(packets)] == [160] * 24


def test_dtmf_before_and_after_the_speech(tmp_path: Path) -> None:
    _sine_wav(tmp_path / "a.wav")
    packets = read_dtmf_pcap(write_audio_pcap(tmp_path / "a.wav", tmp_path / "a.pcap",
                                              before="3w", after="#"))
    assert digits_of(events_of(packets)) == "3#"
    assert all(b.seq == a.seq + 1 for a, b in pairwise(packets))
    assert all(b.timestamp >= a.timestamp and b.time_us >= a.time_us
               for a, b in pairwise(packets))
    assert len({p.ssrc for p in packets}) == 1


def test_a_wav_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    _sine_wav(tmp_path / "b.wav", rate=16000)
    with pytest.raises(ValueError, match="8000, 1, 2"):
        read_wav(tmp_path / "b.wav")
