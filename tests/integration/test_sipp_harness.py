"""The SIPp harness (acdkit.labkit.sipp) with SIPp on both ends, no Asterisk: a caller against
the answering peer on loopback addresses of their own (not the lab's 127.0.0.2-4)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.lab.rtp import RtpSniffer

from acdkit.labkit.dtmfpcap import digits_of, events_of, parse_rtp
from acdkit.labkit.sipp import (
    SCENARIOS,
    Peer,
    SippError,
    SippProcess,
    SippResult,
    caller,
    free_udp_port,
    parse_message_log,
    peer,
)

CALLER_IP, PEER_IP = "127.0.0.12", "127.0.0.13"
@pytest.fixture
def sniffer() -> Iterator[RtpSniffer]:
    if os.geteuid() != 0:  # the lab and CI run as root: a failure, never a silent skip
        pytest.fail("reading RTP off lo needs root (SIPp's pcap play needs it too)",
                    pytrace=False)
    sniff = RtpSniffer(CALLER_IP, PEER_IP)
    yield sniff
    sniff.close()


@pytest.fixture
def far_end(tmp_path: Path) -> Iterator[Peer]:
    """An answering peer on its own address and a free port; users agent9 and 4930111 are
    special (hang up after 0.3 s; busy), agent3 never answers."""
    uas = peer(PEER_IP, free_udp_port(PEER_IP), name="uas", workdir=tmp_path / "uas",
               hangup={"agent9"}, hangup_after=0.3, busy={"4930111"}, noanswer={"agent3"})
    with uas:
        yield uas


def call(far_end: Peer, user: str, tmp_path: Path, **options: object) -> SippResult:
    process = caller(user, local_ip=CALLER_IP, remote=f"{PEER_IP}:{far_end.local_port}",
                     workdir=tmp_path / f"caller-{user}", **options)  # type: ignore[arg-type]
    return process.run()


def test_dtmf_from_the_generated_pcap_reaches_the_far_end(
        far_end: Peer, sniffer: RtpSniffer, tmp_path: Path) -> None:
    result = call(far_end, "agent7", tmp_path, dtmf="1234", hangup_after=1.5, timeout=10)
    packets = sniffer.close()
    assert result.ok, result
    events = events_of(packets)
    assert digits_of(events) == "1234"
    seqs = [p.seq for p in packets]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert len({p.ssrc for p in packets}) == 1
    ends = [e.digit for e in events if e.end]
    assert ends == [d for d in "1234" for _ in range(3)]


def test_the_peer_reports_who_was_called_and_when(far_end: Peer, tmp_path: Path) -> None:
    result = call(far_end, "agent7", tmp_path, caller_id="4930999", hangup_after=0.2, timeout=10)
    assert result.ok, result
    [invite] = far_end.wait_for_invites(1)
    assert (invite.user, invite.from_user) == ("agent7", "4930999")
    assert invite.call_id == result.find("INVITE", sent=True)[0].call_id
    sent, answered, bye = (result.first_time("INVITE", sent=True), result.first_time(200),
                           result.first_time("BYE", sent=True))
    assert sent and answered and bye
    # each SIPp stamps a message when it logs it: the receiver may log before the sender
    assert sent - 0.01 <= invite.time <= answered + 0.01 and answered < bye
    assert 0.15 < bye - answered < 1.0
    assert result.hung_up_by == "local"


def test_caller_takes_the_far_ends_bye(far_end: Peer, tmp_path: Path) -> None:
    result = call(far_end, "agent9", tmp_path, hangup_after=None, timeout=10)
    assert result.ok, result
    assert result.hung_up_by == "remote"


def test_caller_holding_takes_a_bye_in_the_middle(far_end: Peer, tmp_path: Path) -> None:
    result = call(far_end, "agent9", tmp_path, hangup_after=5.0, timeout=10)
    assert result.ok, result
    assert result.hung_up_by == "remote"


def test_the_peer_answers_a_reinvite(far_end: Peer, tmp_path: Path) -> None:
    result = call(far_end, "agent7", tmp_path, hangup_after=0.5, timeout=10,
                  scenario=SCENARIOS / "reinvite_caller.xml")
    assert result.ok, result
    assert [m.headers["cseq"] for m in result.find(200, sent=False)] == \
        ["1 INVITE", "2 INVITE", "3 BYE"]
    assert len(far_end.invites()) == 1  # the re-INVITE is no new call


def test_several_calls(far_end: Peer, tmp_path: Path) -> None:
    result = call(far_end, "agent1", tmp_path, calls=3, rate=10, hangup_after=0.2, timeout=10)
    assert result.ok, result
    assert (result.successful, result.failed) == (3, 0)
    assert len({i.call_id for i in far_end.wait_for_invites(3)}) == 3


def test_busy_and_no_answer_fail_the_caller(far_end: Peer, tmp_path: Path) -> None:
    busy = call(far_end, "4930111", tmp_path, timeout=5)
    assert not busy.ok and busy.failed == 1
    assert busy.find(486, sent=False)
    ringing = call(far_end, "agent3", tmp_path, timeout=2)
    assert not ringing.ok
    assert ringing.find(180) and not ringing.find(200)


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    uas = peer(PEER_IP, free_udp_port(PEER_IP), name="uas", workdir=tmp_path).start()
    assert uas.proc is not None
    pid = uas.proc.pid
    result = uas.stop()
    assert result.returncode is None and uas.proc.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_missing_sipp_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SippError, match="sip-tester"):
        caller("100", workdir=tmp_path).start()


def test_a_scenario_sipp_refuses_is_a_clear_error(tmp_path: Path) -> None:
    broken = SippProcess(Path(__file__).parents[1] / "sipp" / "caller.xml", CALLER_IP,
                         remote=f"{PEER_IP}:5999", calls=1, workdir=tmp_path)  # no keys
    with pytest.raises(SippError, match="did not start"):
        broken.start()


def test_message_log_parsing() -> None:
    log = ("----------------------------------------------- 2026-11-25 14:15:34.475868\n"
           "UDP message received [300] bytes :\n\n"
           "INVITE sip:agent7@127.0.0.3:5070 SIP/2.0\n"
           "From: <sip:4930123456@127.0.0.2:5062>;tag=1\nTo: <sip:agent7@127.0.0.3:5070>\n"
           "Call-ID: abc\nCSeq: 1 INVITE\nContent-Length: 0\n\n\n"
           "----------------------------------------------- 2026-11-25 14:15:34.476070\n"
           "UDP message sent (200 bytes):\n\n"
           "SIP/2.0 180 Ringing\nCall-ID: abc\nCSeq: 1 INVITE\n\n")
    invite, ringing = parse_message_log(log)
    assert (invite.method, invite.request_user, invite.sent, invite.call_id) == \
        ("INVITE", "agent7", False, "abc")
    assert (ringing.status, ringing.cseq_method, ringing.sent) == (180, "INVITE", True)
    assert 0.0001 < ringing.time - invite.time < 0.001


def test_rtp_parsing_round_trip() -> None:
    raw = struct.pack("!BBHII", 0x80, 0x80 | 101, 7, 160, 42) + b"\x05\x8a\x03\x20"
    [event] = events_of([parse_rtp(raw)])
    assert (event.digit, event.end, event.duration, event.seq) == ("5", True, 800, 7)
