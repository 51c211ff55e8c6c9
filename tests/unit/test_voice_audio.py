"""Telephone audio without audioop (speech/audio.py): exact G.711 tables, WAV in and out,
clear errors for what is no audio."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from tests.sipp.audiopcap import ulaw_decode, ulaw_encode

from acdkit.core.errors import InvalidInput
from acdkit.speech import audio


def test_ulaw_table_matches_the_reference_decoder() -> None:
    assert [int(v) for v in audio.ULAW] == [ulaw_decode(b) for b in range(256)]


def test_alaw_table_known_values() -> None:
    # ITU-T G.711: 0xD5 / 0x55 are the smallest positive / negative steps, 0xAA / 0x2A the
    # largest.
    assert [int(audio.ALAW[c]) for c in (0xD5, 0x55, 0xAA, 0x2A)] == [8, -8, 32256, -32256]


def test_ulaw_round_trip_of_a_tone() -> None:
    tone = (8000 * np.sin(np.arange(800) * 2 * np.pi * 440 / 8000)).astype(int)
    encoded = bytes(ulaw_encode(int(s)) for s in tone)
    samples, rate = audio.decode(encoded, "ulaw")
    assert rate == 8000 and len(samples) == 800
    assert np.max(np.abs(samples * 32768 - tone)) < 8000 * 0.05  # G.711 step size


def test_wav_resampled_to_16k_and_written_back_at_8k() -> None:
    tone = (0.3 * np.sin(np.arange(8000) * 2 * np.pi * 300 / 8000)).astype(np.float32)
    wav = audio.to_wav(tone, 8000)
    samples, rate = audio.decode(wav, "wav")
    up = audio.resample(samples, rate, 16000)
    assert rate == 8000 and abs(len(up) - 16000) <= 2
    assert audio.phone_wav(audio.to_wav(up, 16000), "wav")[:4] == b"RIFF"


def test_g711_inside_wav() -> None:
    payload = bytes([0xFF, 0x80] * 800)
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + \
        struct.pack("<I", len(payload)) + payload
    samples, rate = audio.decode(b"RIFF" + struct.pack("<I", len(body)) + body, "wav")
    assert rate == 8000 and len(samples) == 1600 and samples.max() > 0.9


@pytest.mark.parametrize(("data", "fmt", "why"), [
    (b"", "wav", "empty"), (b"RIFF\x00\x00garbage" * 10, "wav", "not a readable WAV"),
    (b"\x00" * 100, "gsm", "not supported"), (b"\x00" * 100, "ulaw", "too short"),
])
def test_bad_audio_is_a_clear_error(data: bytes, fmt: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        audio.decode(data, fmt)
