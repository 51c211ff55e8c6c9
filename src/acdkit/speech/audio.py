"""Telephone audio in and out: decode what Asterisk records, resample, write 8 kHz WAV.

No ``audioop`` (it warns on 3.11 and is gone in 3.13, docs/architecture.md §7): G.711 is
decoded with 256-entry numpy tables and ``soxr`` resamples. Samples travel as float32 in -1..1.

Formats by name (the file suffix, or the ``fmt`` of a voice request): ``wav`` (PCM 16-bit,
or G.711 μ-law/A-law inside WAV), ``ulaw``/``pcmu``, ``alaw``/``pcma`` (raw 8 kHz),
``sln``/``raw`` (raw signed 16-bit 8 kHz), ``sln16`` (raw 16-bit 16 kHz). Anything else,
and empty or corrupt data, raises ``InvalidInput``.
"""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from acdkit.core.errors import InvalidInput

Samples = npt.NDArray[np.float32]
PHONE_RATE = 8_000
ASR_RATE = 16_000
FORMATS = frozenset({"wav", "ulaw", "pcmu", "alaw", "pcma", "sln", "raw", "sln16"})
_MIN_SECONDS = 0.1  # shorter than this is no request at all


def _ulaw_table() -> npt.NDArray[np.int16]:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign, exponent, mantissa = codes & 0x80, (codes >> 4) & 0x07, codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> npt.NDArray[np.int16]:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign, exponent, mantissa = codes & 0x80, (codes >> 4) & 0x07, codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


ULAW = _ulaw_table()  # G.711 μ-law byte → 16-bit sample (ITU-T G.711, exact)
ALAW = _alaw_table()


def _pcm16(data: bytes) -> Samples:
    if len(data) % 2:
        data = data[:-1]
    return (np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)


def _g711(data: bytes, table: npt.NDArray[np.int16]) -> Samples:
    codes = np.frombuffer(data, dtype=np.uint8)
    return (table[codes].astype(np.float32) / 32768.0).astype(np.float32)


def decode(data: bytes, fmt: str) -> tuple[Samples, int]:
    """Mono samples and their rate from ``data`` in format ``fmt``; ``InvalidInput`` when
    the data is empty, corrupt, too short or in a format we do not read."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InvalidInput(f"audio format {fmt!r} is not supported ({', '.join(sorted(FORMATS))})")
    if not data:
        raise InvalidInput("the audio is empty")
    if fmt == "wav":
        samples, rate = _decode_wav(data)
    elif fmt in ("ulaw", "pcmu"):
        samples, rate = _g711(data, ULAW), PHONE_RATE
    elif fmt in ("alaw", "pcma"):
        samples, rate = _g711(data, ALAW), PHONE_RATE
    else:
        samples, rate = _pcm16(data), ASR_RATE if fmt == "sln16" else PHONE_RATE
    if len(samples) < _MIN_SECONDS * rate:
        raise InvalidInput(f"the audio is too short ({len(samples) / rate:.2f} s)")
    return samples, rate


_WAVE_FORMAT_ALAW, _WAVE_FORMAT_ULAW = 6, 7


def _decode_wav(data: bytes) -> tuple[Samples, int]:
    try:
        return _read_pcm_wav(data)
    except wave.Error as err:
        if "unknown format: 6" in str(err) or "unknown format: 7" in str(err):
            return _read_g711_wav(data)
        raise InvalidInput(f"not a readable WAV file: {err}") from None
    except (EOFError, struct.error, RuntimeError) as err:  # wave raises all three
        raise InvalidInput(f"not a readable WAV file: {err or type(err).__name__}") from None


def _read_pcm_wav(data: bytes) -> tuple[Samples, int]:
    with wave.open(io.BytesIO(data)) as wav:
        width, channels, rate = wav.getsampwidth(), wav.getnchannels(), wav.getframerate()
        frames = wav.readframes(wav.getnframes())
    if width != 2:
        raise InvalidInput(f"WAV with {8 * width}-bit samples is not supported (16-bit only)")
    samples = _pcm16(frames)
    if channels > 1:
        samples = samples[: len(samples) - len(samples) % channels]
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.float32)
    return samples, rate


def _read_g711_wav(data: bytes) -> tuple[Samples, int]:
    """WAV files holding G.711 (format tags 6 and 7), which the ``wave`` module refuses."""
    pos, fmt_tag, rate, channels, payload = 12, 0, PHONE_RATE, 1, b""
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if chunk == b"fmt ":
            fmt_tag, channels, rate = struct.unpack("<HHI", body[:8])
        elif chunk == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if channels != 1 or not payload:
        raise InvalidInput("G.711 WAV must be mono and hold data")
    table = ALAW if fmt_tag == _WAVE_FORMAT_ALAW else ULAW
    return _g711(payload, table), rate


def resample(samples: Samples, rate: int, to: int) -> Samples:
    """``samples`` at ``rate`` Hz resampled to ``to`` Hz (soxr, high quality)."""
    if rate == to:
        return samples
    return np.asarray(soxr.resample(samples, rate, to, quality="HQ"), dtype=np.float32)


def load(path: Path, rate: int = ASR_RATE) -> Samples:
    """The audio of ``path`` (format from its suffix) as mono float32 at ``rate`` Hz.
    Raises ``InvalidInput`` for a missing, empty, corrupt or unsupported file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InvalidInput(f"cannot read audio {path.name}: {err.strerror}") from None
    samples, got = decode(data, path.suffix or "wav")
    return resample(samples, got, rate)


def to_wav(samples: Samples, rate: int = PHONE_RATE) -> bytes:
    """Mono 16-bit WAV bytes of ``samples`` at ``rate`` Hz (clipped to full scale)."""
    pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return out.getvalue()


def phone_wav(data: bytes, fmt: str) -> bytes:
    """``data`` (format ``fmt``) as an 8 kHz mono 16-bit WAV, what Asterisk plays natively."""
    samples, rate = decode(data, fmt)
    return to_wav(resample(samples, rate, PHONE_RATE))
