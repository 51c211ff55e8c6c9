"""Speech as an RTP PCMU (G.711 u-law) pcap for SIPp's ``<exec play_pcap_audio=...>``.

A caller leaves a voice request by playing one pcap: optional DTMF first (the menu choice,
then ``w`` pauses while the prompt and the beep play), the speech, then optional DTMF after
(``#`` ends the recording). One SSRC, rising sequence numbers and timestamps throughout, so
Asterisk keeps every packet (see dtmfpcap.py for why that matters).

    speech_pcap("my printer is broken", before="3wwww", after="#")

The WAV must be 8 kHz mono 16-bit; ``speech_wav`` makes one with espeak-ng and sox.
u-law is encoded here in pure Python: ``audioop`` warns on 3.11 and is gone in 3.13.

Usage: ``python tests/sipp/audiopcap.py "text to say" out.pcap``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import wave
from array import array
from pathlib import Path

from acdkit.labkit.dtmfpcap import (
        CLOCK_RATE,
        DEFAULT_SSRC,
        GENERATED_DIR,
        PACKET_MS,
        PCMU_PT,
        RtpPacket,
        dtmf_packets,
        write_rtp_pcap,
    )

_BIAS = 0x84
_CLIP = 32635
SAMPLES_PER_PACKET = CLOCK_RATE * PACKET_MS // 1000


def ulaw_encode(sample: int) -> int:
    """One 16-bit linear sample as a G.711 u-law byte."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), _CLIP) + _BIAS
    exponent = min(max(magnitude.bit_length() - 8, 0), 7)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def ulaw_decode(byte: int) -> int:
    """One G.711 u-law byte as a 16-bit linear sample."""
    byte = ~byte & 0xFF
    magnitude = ((((byte & 0x0F) << 3) + _BIAS) << ((byte >> 4) & 0x07)) - _BIAS
    return -magnitude if byte & 0x80 else magnitude


_ENCODE = bytes(ulaw_encode(s) for s in range(-32768, 32768))


def encode_pcm(samples: array[int]) -> bytes:
    """Signed 16-bit samples as u-law bytes (a 64 K table: fast enough for test prompts)."""
    return bytes(_ENCODE[s + 32768] for s in samples)


def read_wav(path: Path) -> array[int]:
    """The samples of an 8 kHz mono 16-bit WAV; ValueError naming what is wrong otherwise."""
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
        if shape != (CLOCK_RATE, 1, 2):
            raise ValueError(f"{path}: {shape} (rate, channels, bytes per sample); want "
                             f"(8000, 1, 2): sox IN -r 8000 -c 1 -b 16 OUT.wav")
        samples = array("h", wav.readframes(wav.getnframes()))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def audio_packets(payload: bytes, *, first_seq: int, first_timestamp: int, start_ms: int,
                  ssrc: int = DEFAULT_SSRC) -> list[RtpPacket]:
    """u-law bytes as 20 ms PCMU packets (the last one padded with silence)."""
    packets: list[RtpPacket] = []
    for i in range(0, len(payload), SAMPLES_PER_PACKET):
        chunk = payload[i:i + SAMPLES_PER_PACKET].ljust(SAMPLES_PER_PACKET, b"\xff")
        at_ms = start_ms + i // SAMPLES_PER_PACKET * PACKET_MS
        timestamp = (first_timestamp + at_ms * CLOCK_RATE // 1000) & 0xFFFFFFFF
        packets.append(RtpPacket(at_ms * 1000, (first_seq + len(packets)) & 0xFFFF, timestamp,
                                 ssrc, PCMU_PT, not packets, chunk))
    return packets


def _end_ms(packets: list[RtpPacket], fallback: int) -> int:
    return packets[-1].time_us // 1000 + PACKET_MS if packets else fallback


def write_audio_pcap(wav: Path, path: Path, *, before: str = "", after: str = "") -> Path:
    """Write a pcap that sends DTMF ``before``, the WAV's audio, then DTMF ``after``."""
    first_seq, first_timestamp = 1000, 8000
    packets: list[RtpPacket] = dtmf_packets(before, first_seq=first_seq) if before else []
    audio = audio_packets(encode_pcm(read_wav(wav)), first_seq=first_seq + len(packets),
                          first_timestamp=first_timestamp, start_ms=_end_ms(packets, 0))
    packets += audio
    if after:
        packets += dtmf_packets(after, first_seq=first_seq + len(packets),
                                first_timestamp=first_timestamp,
                                start_ms=_end_ms(packets, 0) + 100)
    return write_rtp_pcap(packets, path)


def speech_wav(text: str, path: Path, *, voice: str = "en-us", wpm: int = 150) -> Path:
    """Speak ``text`` with espeak-ng into an 8 kHz mono 16-bit WAV (sox resamples)."""
    for tool in ("espeak-ng", "sox"):
        if not shutil.which(tool):
            raise FileNotFoundError(f"{tool} not found: apt-get install espeak-ng sox")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text],
                       check=True, capture_output=True)
        subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path)],
                       check=True, capture_output=True)
    return path


def speech_pcap(text: str, *, before: str = "", after: str = "") -> Path:
    """The cached pcap that sends ``before``, speaks ``text``, then sends ``after``."""
    key = hashlib.sha256(f"{text}\0{before}\0{after}".encode()).hexdigest()[:16]
    path = GENERATED_DIR / f"speech_{key}.pcap"
    if not path.exists():
        with tempfile.TemporaryDirectory() as tmp:
            write_audio_pcap(speech_wav(text, Path(tmp) / "s.wav"), path, before=before,
                             after=after)
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print('usage: python tests/sipp/audiopcap.py "TEXT" OUT.pcap', file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        write_audio_pcap(speech_wav(argv[0], Path(tmp) / "s.wav"), Path(argv[1]))
    print(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
