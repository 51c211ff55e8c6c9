"""``found_in``, how the lab tests know a reply reached a phone whole (tests/lab/rtp.py)."""

from __future__ import annotations

import numpy as np
from tests.lab.rtp import found_in

RATE = 8_000


def speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 0.2, int(seconds * RATE))
    envelope = 0.5 + 0.5 * np.sin(np.arange(noise.size) * 2 * np.pi * 4 / RATE)  # syllables
    return (noise * envelope).astype(np.float32)


def heard_with(known: np.ndarray, seed: int = 9) -> np.ndarray:
    before, after = speechlike(3.0, seed), speechlike(2.0, seed + 1)
    return np.concatenate([before, np.zeros(400, np.float32), known, after])


def test_a_copy_among_other_sounds_is_found_at_any_level() -> None:
    known = speechlike(2.0, 1)
    assert found_in(known, heard_with(known)) > 0.999
    assert found_in(known, heard_with(0.3 * known)) > 0.999  # a quieter line


def test_coarse_quantisation_and_a_lost_packet_keep_it_high() -> None:
    known = speechlike(2.0, 1)
    heard = np.round(heard_with(known) * 64) / 64
    start = 3 * RATE + 400 + 4000  # half a second into the copy
    heard[start:start + 160] = 0  # 20 ms gone
    assert 0.9 < found_in(known, heard) < 0.999


def test_a_copy_cut_short_or_another_sound_is_not_found() -> None:
    known = speechlike(2.0, 1)
    assert found_in(known, heard_with(known[: known.size // 2])) < 0.5
    assert found_in(known, heard_with(speechlike(2.0, 2))) < 0.2
    assert found_in(known, known[:100]) == 0.0  # shorter than what is looked for
