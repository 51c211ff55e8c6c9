"""UDP ports for lab peers (SIPp's SIP and media ports), never handed out twice at once.

Picking a random port, checking that it binds and closing it again is a race: between the
check and SIPp's own bind, another process (a SIPp started at the same moment by another test
or session, or any socket the kernel auto-binds to an ephemeral port) can take it, and SIPp
exits with "Unable to bind ... errno = 98". Here every process on the machine takes ports from
one counter in a file under the temp directory, under an ``fcntl`` lock, so two callers never
get the same block until the whole range has gone round; a block still bound by a live process
is skipped. The range stays below the kernel's ephemeral ports
(``/proc/sys/net/ipv4/ip_local_port_range``) and above Asterisk's RTP ports (10000-20000 in
the lab's rtp.conf), so nothing else is handed a port from it.

Whether a process holds a port is read from ``/proc/net/udp`` (never by binding a probe
socket, which would itself take the port for a moment from the SIPp that is starting).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import socket
import sys
import tempfile
from pathlib import Path

LOW = 20000  # above Asterisk's RTP range in the lab (asterisk/etc/rtp.conf)
COUNTER = Path(tempfile.gettempdir()) / "acdkit-ports.counter"


class NoFreePort(RuntimeError):
    """No block of free UDP ports in the lab range."""


def ephemeral_low(default: int = 32768) -> int:
    """The first port the kernel may hand out on its own (auto-bound sockets)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def allocate_udp(ip: str, *, span: int = 1, counter: Path | None = None) -> int:
    """An even port P with P..P+span-1 free for UDP on ``ip``, never returned to another caller
    (any process) until the whole range has been handed out once since."""
    span = max(1, span)
    block = span + (span & 1)  # blocks stay even-aligned (RTP on even ports)
    high = ephemeral_low()
    slots = (high - LOW) // block
    if slots < 1:
        raise NoFreePort(f"no room for {span} UDP ports between {LOW} and {high}")
    path = counter or COUNTER
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
        nxt = int(raw) if raw.isdigit() else os.getpid()
        for step in range(slots):
            port = LOW + ((nxt + step) % slots) * block
            if all(_free(ip, p) for p in range(port, port + span)):
                _store(fd, nxt + step + 1)
                return port
        raise NoFreePort(f"no {span} free UDP ports on {ip} in {LOW}..{high}")
    finally:
        os.close(fd)  # releases the lock


def _store(fd: int, value: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(value).encode(), 0)


def _free(ip: str, port: int) -> bool:
    """Nobody holds ``port`` on ``ip`` (nor on the wildcard address), and it binds now."""
    if udp_bound(ip, port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((ip, port))
        except OSError:
            return False
    return True


def udp_bound(ip: str, port: int) -> bool:
    """A UDP socket in this network namespace is bound to ``ip:port`` or ``0.0.0.0:port``
    (read from /proc/net/udp: nothing is bound to find out)."""
    wanted = {_proc_address(ip, port), _proc_address("0.0.0.0", port)}
    with contextlib.suppress(OSError), open("/proc/net/udp", encoding="ascii") as table:
        next(table, None)
        return any(line.split()[1] in wanted for line in table if len(line.split()) > 1)
    return False


def _proc_address(ip: str, port: int) -> str:
    """``ip:port`` as /proc/net/udp writes it (address in host byte order, hex)."""
    packed = ipaddress.IPv4Address(ip).packed
    return f"{int.from_bytes(packed, sys.byteorder):08X}:{port:04X}"
