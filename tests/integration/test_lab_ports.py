"""Lab peers' UDP ports (acdkit.labkit.ports): processes started at the same moment never get
the same port, a port held by anyone is skipped, and checking a port does not take it."""

from __future__ import annotations

import multiprocessing
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from acdkit.labkit import ports

IP = "127.0.0.14"


@pytest.fixture
def counter(tmp_path: Path) -> Path:
    return tmp_path / "ports.counter"


def _allocate_many(args: tuple[str, int, int]) -> list[int]:
    counter, span, count = args
    return [ports.allocate_udp(IP, span=span, counter=Path(counter)) for _ in range(count)]


def test_parallel_processes_never_get_the_same_port(counter: Path) -> None:
    with multiprocessing.get_context("fork").Pool(4) as pool:
        results = pool.map(_allocate_many, [(str(counter), 4, 50)] * 4)
    blocks = [port for result in results for port in result]
    assert len(blocks) == 200
    assert len(set(blocks)) == 200
    assert all(port % 2 == 0 and ports.LOW <= port < ports.ephemeral_low() for port in blocks)


@pytest.fixture
def held() -> Iterator[int]:
    """A port on IP bound by this process (as by another peer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((IP, 0))
        yield int(sock.getsockname()[1])


def test_a_bound_port_is_seen_without_binding_it(held: int) -> None:
    assert ports.udp_bound(IP, held)
    assert not ports.udp_bound("127.0.0.15", held)


def test_a_held_port_is_skipped(counter: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        first = ports.allocate_udp(IP, span=2, counter=counter)
        sock.bind((IP, first + 2))  # the start of the next block
        second = ports.allocate_udp(IP, span=2, counter=counter)
    assert second not in (first, first + 2)
    assert second == first + 4


def test_the_counter_wraps_within_the_range(counter: Path) -> None:
    slots = (ports.ephemeral_low() - ports.LOW) // 2
    counter.write_text(str(slots - 1))
    last = ports.allocate_udp(IP, span=2, counter=counter)
    wrapped = ports.allocate_udp(IP, span=2, counter=counter)
    assert (last, wrapped) == (ports.LOW + (slots - 1) * 2, ports.LOW)
