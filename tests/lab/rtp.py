"""Count the RTP Asterisk sends to a SIPp peer: read off ``lo`` with an AF_PACKET socket
(root, as the lab and CI run). SIPp's caller scenario does not record what it hears, so this
is how a test knows a caller was played audio, not left in silence."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # loopback shows each packet twice: count the incoming copy
SIP_PORT = 5060


class RtpCounter:
    """RTP packets (UDP, version 2) from ``src`` to ``dst``, not SIP, counted as they pass."""

    def __init__(self, src: str = "127.0.0.1", dst: str = "127.0.0.2") -> None:
        self.src, self.dst = socket.inet_aton(src), socket.inet_aton(dst)
        self.packets = 0
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
            if address[2] != PACKET_OUTGOING and self._is_rtp(frame[14:]):
                self.packets += 1

    def _is_rtp(self, ip: bytes) -> bool:
        if len(ip) < 20 or ip[9] != 17 or ip[12:16] != self.src or ip[16:20] != self.dst:
            return False
        ihl = (ip[0] & 0x0F) * 4
        sport = int.from_bytes(ip[ihl:ihl + 2], "big")
        payload = ip[ihl + 8:]
        return sport != SIP_PORT and len(payload) >= 12 and payload[0] >> 6 == 2

    def close(self) -> int:
        self._done.set()
        self._thread.join(2)
        self.sock.close()
        return self.packets

    def __enter__(self) -> RtpCounter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
