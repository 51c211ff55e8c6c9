"""src/acdkit/labkit/dtmfpcap.py: the pcaps it writes read back as the digits asked for, with rising
sequence numbers and timestamps, one SSRC and three end packets per digit."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit.labkit import dtmfpcap
from acdkit.labkit.dtmfpcap import (
    TELEPHONE_EVENT_PT,
    digits_of,
    dtmf_pcap,
    events_of,
    pcap_name,
    read_dtmf_pcap,
    read_pcap_udp,
    write_dtmf_pcap,
)

SHIPPED = Path("/usr/share/sip-tester")
DIGIT_STRINGS = st.text(alphabet="0123456789*#ABCDw", min_size=1, max_size=12).filter(
    lambda s: s.strip("w") != "")


def _written(tmp_path: Path, digits: str) -> list[dtmfpcap.RtpPacket]:
    return read_dtmf_pcap(write_dtmf_pcap(digits, tmp_path / "dtmf.pcap"))


@settings(max_examples=40, deadline=None)
@given(digits=DIGIT_STRINGS)
def test_digits_read_back(tmp_path_factory: pytest.TempPathFactory, digits: str) -> None:
    packets = _written(tmp_path_factory.mktemp("pcap"), digits)
    assert digits_of(events_of(packets)) == digits.replace("w", "")


@settings(max_examples=40, deadline=None)
@given(digits=DIGIT_STRINGS)
def test_sequence_numbers_timestamps_and_times_rise(
        tmp_path_factory: pytest.TempPathFactory, digits: str) -> None:
    packets = _written(tmp_path_factory.mktemp("pcap"), digits)
    assert all(b.seq == a.seq + 1 for a, b in pairwise(packets))
    assert all(b.timestamp >= a.timestamp for a, b in pairwise(packets))
    assert all(b.time_us >= a.time_us for a, b in pairwise(packets))
    assert len({p.ssrc for p in packets}) == 1


def test_each_digit_is_one_event_then_three_end_packets(tmp_path: Path) -> None:
    events = events_of(_written(tmp_path, "1#D"))
    stamps = sorted({e.timestamp for e in events})
    assert len(stamps) == 3 and stamps == sorted(stamps)
    for stamp, digit in zip(stamps, "1#D", strict=True):
        mine = [e for e in events if e.timestamp == stamp]
        assert {e.digit for e in mine} == {digit}
        assert [e.end for e in mine] == [False] * 5 + [True] * 3
        assert {e.duration for e in mine if e.end} == {800}  # 100 ms at 8 kHz
        assert {e.volume for e in mine} == {10}
        durations = [e.duration for e in mine if not e.end]
        assert durations == sorted(durations)


def test_digits_are_spaced_and_pauses_last_half_a_second(tmp_path: Path) -> None:
    packets = _written(tmp_path, "1w2")
    starts = {p.timestamp: p.time_us for p in packets if p.payload_type == TELEPHONE_EVENT_PT}
    (t1, us1), (t2, us2) = sorted(starts.items())
    assert us2 - us1 == 700_000  # 100 ms tone + 100 ms gap + 500 ms pause
    assert t2 - t1 == 5600  # the RTP clock moves with it (8 kHz)
    silence = [p for p in packets if p.payload_type == 0]
    assert len(silence) == 25 and all(p.payload == b"\xff" * 160 for p in silence)


def test_framing_matches_the_shipped_pcaps(tmp_path: Path) -> None:
    ours = (tmp_path / "ours.pcap")
    write_dtmf_pcap("7", ours)
    assert ours.read_bytes()[:24] == dtmfpcap._PCAP_HEADER  # Ethernet link type
    udp = read_pcap_udp(ours)
    assert all(payload[1] & 0x7F == TELEPHONE_EVENT_PT for _, payload in udp)
    if (SHIPPED / "dtmf_2833_7.pcap").exists():
        shipped = (SHIPPED / "dtmf_2833_7.pcap").read_bytes()
        assert shipped[20:24] == ours.read_bytes()[20:24]
        assert digits_of(events_of(read_dtmf_pcap(SHIPPED / "dtmf_2833_7.pcap"))) == "7"


def test_udp_goes_to_one_port(tmp_path: Path) -> None:
    # SIPp maps destination ports relative to the lowest one in the file.
    frames = (tmp_path / "x.pcap")
    write_dtmf_pcap("12w", frames)
    data = frames.read_bytes()
    ports = set()
    offset = 24
    while offset < len(data):
        incl = int.from_bytes(data[offset + 8:offset + 12], "little")
        frame = data[offset + 16:offset + 16 + incl]
        ports.add(int.from_bytes(frame[36:38], "big"))
        offset += 16 + incl
    assert ports == {10000}


def test_cache_names_and_writes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dtmfpcap, "GENERATED_DIR", tmp_path)
    assert pcap_name("1*#a") == "dtmf_1starpoundA.pcap"
    first = dtmf_pcap("1*#")
    assert first == tmp_path / "dtmf_1starpound.pcap"
    stamp = first.stat().st_mtime_ns
    assert dtmf_pcap("1*#") == first and first.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("bad", ["", "12x", "1 2", "E"])
def test_bad_digits_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="DTMF string"):
        write_dtmf_pcap(bad, tmp_path / "x.pcap")


def test_cli(tmp_path: Path) -> None:
    script = Path(dtmfpcap.__file__)
    done = subprocess.run([sys.executable, str(script), "1234", str(tmp_path / "o.pcap")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(tmp_path / "o.pcap")
    assert digits_of(events_of(read_dtmf_pcap(tmp_path / "o.pcap"))) == "1234"
    refused = subprocess.run([sys.executable, str(script), "12x", str(tmp_path / "p.pcap")],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "DTMF string" in refused.stderr
