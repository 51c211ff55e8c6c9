"""Read the RTP one loopback address sends another, off ``lo`` with an AF_PACKET socket
(root, as the lab and CI run). SIPp's caller scenario does not record what it hears, so this
is how a test knows a caller was played audio, not left in silence; the SIPp harness tests
decode the DTMF events it carries."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import numpy as np
import numpy.typing as npt

from acdkit.labkit.dtmfpcap import RtpPacket, parse_rtp

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # loopback shows each packet twice: keep the incoming copy
SIP_PORT = 5060


class RtpSniffer:
    """RTP packets (UDP, version 2, not from the SIP port) from ``src`` to ``dst``, kept in
    ``packets`` as they pass."""

    def __init__(self, src: str = "127.0.0.1", dst: str = "127.0.0.2") -> None:
        self.src, self.dst = socket.inet_aton(src), socket.inet_aton(dst)
        self.packets: list[RtpPacket] = []
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.1)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                frame, address = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            if address[2] != PACKET_OUTGOING:
                self._take(frame[14:])  # lo frames carry an all-zero Ethernet header

    def _take(self, ip: bytes) -> None:
        if len(ip) < 20 or ip[9] != 17 or ip[12:16] != self.src or ip[16:20] != self.dst:
            return
        ihl = (ip[0] & 0x0F) * 4
        sport = int.from_bytes(ip[ihl:ihl + 2], "big")
        payload = ip[ihl + 8:]
        if sport != SIP_PORT and len(payload) >= 12 and payload[0] >> 6 == 2:
            self.packets.append(parse_rtp(payload))

    def close(self) -> list[RtpPacket]:
        self._done.set()
        self._thread.join(2)
        self.sock.close()
        return self.packets

    def __enter__(self) -> RtpSniffer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def pcmu_heard(packets: list[RtpPacket]) -> bytes:
    """The PCMU audio of ``packets`` in the order they arrived, as a phone plays it (loopback
    does not reorder). Not sorted by sequence number: the numbers start at a random value and
    wrap at 65536, and a new stream (another SSRC) has its own base, so a sort can move the
    end of a call before its start or interleave two streams (one delivery call was heard as
    a string of digits that way under load)."""
    return b"".join(p.payload for p in packets if p.payload_type == 0)


def streams(packets: list[RtpPacket]) -> list[tuple[int, int, int, int]]:
    """Each stream in ``packets`` as (SSRC, packets, first and last sequence number), for a
    failure message."""
    seen: dict[int, list[int]] = {}
    for p in packets:
        seen.setdefault(p.ssrc, []).append(p.seq)
    return [(ssrc, len(seqs), seqs[0], seqs[-1]) for ssrc, seqs in seen.items()]


def found_in(known: npt.NDArray[np.float32], heard: npt.NDArray[np.float32]) -> float:
    """How faithfully the audio ``known`` occurs somewhere in ``heard`` (same rate): the best
    normalised cross-correlation over every offset, 1.0 for an exact copy. G.711 coding keeps
    it near 0.99; a copy cut short, garbled or missing falls far below. A test that asks
    Whisper what a customer heard depends on the words around it (the reference digits
    before a reply changed how Whisper tiny.en heard the reply in 3 of 29 trials), so
    whether a known recording or text-to-speech reached a phone intact is checked here."""
    n = len(known)
    if n == 0 or len(heard) < n:
        return 0.0
    ref = known.astype(np.float64) - float(known.mean())
    got = heard.astype(np.float64)
    size = 1 << (len(got) + n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(got, size) * np.conj(np.fft.rfft(ref, size)), size)
    corr = corr[:len(got) - n + 1]
    # each window's energy about its own mean, from running sums
    s1 = np.concatenate([[0.0], np.cumsum(got)])
    s2 = np.concatenate([[0.0], np.cumsum(got * got)])
    window = s2[n:] - s2[:-n] - (s1[n:] - s1[:-n]) ** 2 / n
    score = corr / (np.linalg.norm(ref) * np.sqrt(np.maximum(window, 1e-12)))
    return float(score.max())
