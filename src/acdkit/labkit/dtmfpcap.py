"""RFC 4733 (ex-2833) DTMF as a pcap for SIPp's ``<exec play_pcap_audio=...>``.

SIPp replays a pcap's UDP payloads as they are, keeping the capture's timing; it
rewrites only the ports and addresses. Its shipped one-digit pcaps
(/usr/share/sip-tester/dtmf_2833_*.pcap) share one SSRC and their sequence
numbers are not in digit order, so playing ``4`` then ``2`` makes Asterisk drop
the ``2`` as an old packet (seen on 22.10.1). This module writes one pcap for a
whole digit string instead: one SSRC, rising sequence numbers and timestamps.

Per digit: an event packet every 20 ms for 100 ms (volume 10), then three end
packets (E bit) with the event's timestamp, then 100 ms with no packets before
the next digit. A ``w`` in the string is a 500 ms pause that sends PCMU
silence, as a phone would (SIPp sends a pcap's first packet at once, so a
leading pause needs packets to time it).

Framing copies the shipped pcaps: Ethernet link type, UDP to port 10000,
payload type 101 (offer ``a=rtpmap:101 telephone-event/8000`` in the SDP).

Usage: ``python -m acdkit.labkit.dtmfpcap 1234 out.pcap``.
"""

from __future__ import annotations

import struct
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14,
               "D": 15}
DIGIT_OF_CODE = {code: digit for digit, code in EVENT_CODES.items()}
PAUSE = "w"
TELEPHONE_EVENT_PT = 101
PCMU_PT = 0
CLOCK_RATE = 8000
PACKET_MS = 20
TONE_MS = 100
GAP_MS = 100
PAUSE_MS = 500
VOLUME = 10
END_PACKETS = 3
DEFAULT_SSRC = 0x41434431  # "ACD1"
PCMU_SILENCE = b"\xff" * (CLOCK_RATE * PACKET_MS // 1000)

# Generated pcaps are cached outside the package (it may be installed read-only).
GENERATED_DIR = Path(tempfile.gettempdir()) / "acdkit-pcaps"
_FILE_NAME_OF = {"*": "star", "#": "pound"}

# Addresses only label the capture: SIPp sends from its media address and port to
# the far end's SDP address and port. It maps ports relative to the lowest
# destination port in the file, so every packet goes to the same one.
_SRC = ("127.0.0.2", 49176)
_DST = ("127.0.0.1", 10000)
_MACS = bytes.fromhex("0050bf990336000d8714ac24")
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # 1 = Ethernet


@dataclass(frozen=True)
class RtpPacket:
    """One RTP packet and when (microseconds from the start) it leaves."""

    time_us: int
    seq: int
    timestamp: int
    ssrc: int
    payload_type: int
    marker: bool
    payload: bytes


@dataclass(frozen=True)
class DtmfEvent:
    """One RFC 4733 telephone-event payload, with its RTP header fields."""

    seq: int
    timestamp: int
    digit: str
    end: bool
    volume: int
    duration: int


# ---- building packets --------------------------------------------------------------------


def normalize(digits: str) -> str:
    """Upper-case A-D; raise ValueError on a character that is neither a digit nor ``w``."""
    text = "".join(c if c in (PAUSE, "W") else c.upper() for c in digits).replace("W", PAUSE)
    bad = sorted({c for c in text if c != PAUSE and c not in EVENT_CODES})
    if not text or bad:
        raise ValueError(f"DTMF string {digits!r}: use 0-9 * # A-D and w (pause); bad: {bad}")
    return text


class _Clock:
    """Sequence numbers and times as a call's packets are laid out."""

    def __init__(self, first_seq: int, first_timestamp: int, ssrc: int, start_ms: int) -> None:
        self.seq = first_seq
        self.first_timestamp = first_timestamp
        self.ssrc = ssrc
        self.ms = start_ms

    def packet(self, at_ms: int, rtp_ms: int, pt: int, marker: bool, payload: bytes) -> RtpPacket:
        timestamp = (self.first_timestamp + rtp_ms * CLOCK_RATE // 1000) & 0xFFFFFFFF
        pkt = RtpPacket(at_ms * 1000, self.seq & 0xFFFF, timestamp, self.ssrc, pt, marker, payload)
        self.seq += 1
        return pkt


def event_payload(code: int, end: bool, duration: int, volume: int = VOLUME) -> bytes:
    """The 4-byte telephone-event payload: event, E|R|volume, duration in samples."""
    return struct.pack("!BBH", code, (0x80 if end else 0) | (volume & 0x3F), duration)


def _digit_packets(clock: _Clock, digit: str) -> Iterator[RtpPacket]:
    start, code = clock.ms, EVENT_CODES[digit]
    samples_per_packet = CLOCK_RATE * PACKET_MS // 1000
    for i in range(TONE_MS // PACKET_MS):
        yield clock.packet(start + i * PACKET_MS, start, TELEPHONE_EVENT_PT, i == 0,
                           event_payload(code, False, (i + 1) * samples_per_packet))
    total = TONE_MS * CLOCK_RATE // 1000
    for _ in range(END_PACKETS):
        yield clock.packet(start + TONE_MS, start, TELEPHONE_EVENT_PT, False,
                           event_payload(code, True, total))
    clock.ms = start + TONE_MS + GAP_MS


def _pause_packets(clock: _Clock) -> Iterator[RtpPacket]:
    start = clock.ms
    for i in range(PAUSE_MS // PACKET_MS):
        at = start + i * PACKET_MS
        yield clock.packet(at, at, PCMU_PT, i == 0, PCMU_SILENCE)
    clock.ms = start + PAUSE_MS


def dtmf_packets(digits: str, *, first_seq: int = 1000, first_timestamp: int = 8000,
                 ssrc: int = DEFAULT_SSRC, start_ms: int = 0) -> list[RtpPacket]:
    """The RTP packets that send ``digits`` (with ``w`` pauses), in order.

    ``start_ms`` places the first one later in the stream (send time and RTP timestamp both
    count from ``first_timestamp`` at 0 ms), to continue a stream of other packets."""
    clock = _Clock(first_seq, first_timestamp, ssrc, start_ms)
    packets: list[RtpPacket] = []
    for char in normalize(digits):
        packets.extend(_pause_packets(clock) if char == PAUSE else _digit_packets(clock, char))
    return packets


# ---- pcap framing ------------------------------------------------------------------------


def rtp_bytes(pkt: RtpPacket) -> bytes:
    """RTP header (version 2, no CSRC, no extension) and payload."""
    second = (0x80 if pkt.marker else 0) | pkt.payload_type
    return struct.pack("!BBHII", 0x80, second, pkt.seq, pkt.timestamp, pkt.ssrc) + pkt.payload


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip4(address: str) -> bytes:
    return bytes(int(part) for part in address.split("."))


def udp_frame(payload: bytes, ident: int) -> bytes:
    """Ethernet + IPv4 + UDP around ``payload``, checksums filled in."""
    src, dst = _ip4(_SRC[0]), _ip4(_DST[0])
    udp_len = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, 17, udp_len)
    udp = struct.pack("!HHHH", _SRC[1], _DST[1], udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, ident & 0xFFFF, 0, 64, 17, 0, src,
                     dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _MACS + b"\x08\x00" + ip + udp


def write_rtp_pcap(packets: Iterable[RtpPacket], path: Path, *, epoch: int = 1_700_000_000) -> Path:
    """Write ``packets`` as an Ethernet pcap that SIPp's play_pcap_audio accepts."""
    chunks = [_PCAP_HEADER]
    for ident, pkt in enumerate(packets):
        frame = udp_frame(rtp_bytes(pkt), ident)
        sec, usec = divmod(pkt.time_us, 1_000_000)
        chunks.append(struct.pack("<IIII", epoch + sec, usec, len(frame), len(frame)) + frame)
    return _write_if_changed(path, b"".join(chunks))


def _write_if_changed(path: Path, data: bytes) -> Path:
    """Write atomically, and not at all when the file already holds ``data``."""
    path = Path(path)
    if path.exists() and path.read_bytes() == data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
    Path(f.name).replace(path)
    return path


def write_dtmf_pcap(digits: str, path: Path) -> Path:
    """Write the RFC 4733 pcap that sends ``digits`` (0-9 * # A-D, ``w`` = 0.5 s pause)."""
    return write_rtp_pcap(dtmf_packets(digits), path)


def pcap_name(digits: str) -> str:
    """``dtmf_<digits>.pcap`` with ``*`` as ``star`` and ``#`` as ``pound``."""
    return "dtmf_" + "".join(_FILE_NAME_OF.get(c, c) for c in normalize(digits)) + ".pcap"


def dtmf_pcap(digits: str) -> Path:
    """The cached pcap for ``digits`` under GENERATED_DIR (written when missing)."""
    return write_dtmf_pcap(digits, GENERATED_DIR / pcap_name(digits))


# ---- reading back ------------------------------------------------------------------------


def read_pcap_udp(path: Path) -> list[tuple[int, bytes]]:
    """(microseconds from the first packet, UDP payload) for each Ethernet/IPv4/UDP frame."""
    data = Path(path).read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    if magic != 0xA1B2C3D4 or linktype != 1:
        raise ValueError(f"{path}: not a little-endian microsecond Ethernet pcap")
    out: list[tuple[int, bytes]] = []
    offset, first = 24, None
    while offset < len(data):
        sec, usec, incl, _ = struct.unpack("<IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + incl]
        offset += 16 + incl
        now = sec * 1_000_000 + usec
        first = now if first is None else first
        ihl = (frame[14] & 0x0F) * 4
        out.append((now - first, frame[14 + ihl + 8:]))
    return out


def parse_rtp(data: bytes, time_us: int = 0) -> RtpPacket:
    """Parse a plain RTP packet (no CSRC list, no header extension)."""
    first, second, seq, timestamp, ssrc = struct.unpack("!BBHII", data[:12])
    if first >> 6 != 2:
        raise ValueError(f"not RTP version 2: first byte {first:#x}")
    return RtpPacket(time_us, seq, timestamp, ssrc, second & 0x7F, bool(second & 0x80), data[12:])


def parse_event(pkt: RtpPacket) -> DtmfEvent:
    """The telephone-event payload of ``pkt``."""
    code, flags, duration = struct.unpack("!BBH", pkt.payload[:4])
    return DtmfEvent(pkt.seq, pkt.timestamp, DIGIT_OF_CODE.get(code, "?"), bool(flags & 0x80),
                     flags & 0x3F, duration)


def events_of(packets: Iterable[RtpPacket],
              payload_type: int = TELEPHONE_EVENT_PT) -> list[DtmfEvent]:
    """The telephone-event packets among ``packets``, decoded, in order."""
    return [parse_event(p) for p in packets if p.payload_type == payload_type]


def digits_of(events: Iterable[DtmfEvent]) -> str:
    """The digits a receiver reports: one per event timestamp, when its first end packet comes."""
    done: set[int] = set()
    digits = []
    for event in events:
        if event.end and event.timestamp not in done:
            done.add(event.timestamp)
            digits.append(event.digit)
    return "".join(digits)


def read_dtmf_pcap(path: Path) -> list[RtpPacket]:
    """Every RTP packet in a pcap (as written here or by SIPp's shipped ones)."""
    return [parse_rtp(payload, t) for t, payload in read_pcap_udp(path)]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m acdkit.labkit.dtmfpcap DIGITS OUT.pcap", file=sys.stderr)
        return 2
    try:
        path = write_dtmf_pcap(argv[0], Path(argv[1]))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
