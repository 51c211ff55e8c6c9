"""Text to speech with the real espeak-ng: the same text is spoken once (a cache on disk), no
more than ``concurrency`` processes run at once, and one that outlives its time is killed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from acdkit.core.errors import Unavailable
from acdkit.speech.tts import Speaker

pytestmark = pytest.mark.integration


def espeak_children() -> int:
    """espeak-ng processes whose parent is this process (running or not yet reaped)."""
    found = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:]
        if name.startswith("espeak") and int(rest.split()[1]) == os.getpid():
            found += 1
    return found


async def test_the_same_text_is_spoken_once(tmp_path: Path) -> None:
    speaker = Speaker(tmp_path, concurrency=4)
    bodies = await asyncio.gather(*[speaker.speak("Your callback is booked") for _ in range(8)])
    assert speaker.runs == 1
    assert len(set(bodies)) == 1 and bodies[0].startswith(b"RIFF")
    assert [p.name for p in tmp_path.iterdir()] == [speaker.path("Your callback is booked",
                                                                 "en-us").name]
    again = Speaker(tmp_path)  # another process, the same cache
    assert await again.speak("Your  callback is booked") == bodies[0]  # spaces do not count
    assert again.runs == 0
    assert await again.speak("Your callback is booked", "en-gb") != b""
    assert again.runs == 1  # another voice is another file


async def test_no_more_processes_than_the_cap(tmp_path: Path) -> None:
    speaker = Speaker(tmp_path, concurrency=2)
    most = 0

    async def watch() -> None:
        nonlocal most
        while True:
            most = max(most, espeak_children())
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(*[speaker.speak(f"request number {n} is ready, " * 5)
                               for n in range(8)])
    finally:
        watcher.cancel()
    assert speaker.runs == 8
    assert 1 <= most <= 2
    assert espeak_children() == 0


async def test_a_process_that_takes_too_long_is_killed_and_reaped(tmp_path: Path) -> None:
    speaker = Speaker(tmp_path, timeout=0.05)
    with pytest.raises(Unavailable, match="killed"):
        await speaker.speak("a very long reply that takes a while to speak. " * 40)
    assert espeak_children() == 0
    assert list(tmp_path.glob("*.wav")) == []  # nothing half-spoken is kept


async def test_the_cache_keeps_at_most_max_files(tmp_path: Path) -> None:
    speaker = Speaker(tmp_path, max_files=3)
    for n in range(5):
        await speaker.speak(f"number {n}")
    assert len(list(tmp_path.glob("*.wav"))) == 3
    assert not list(tmp_path.glob("*.part"))
