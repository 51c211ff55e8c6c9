"""The audio endpoint of ``serve`` (ari/media.py) serves stored audio and nothing else: a
file name with a trailing newline is no file name, and a stored file replaced by a symlink,
a hard link or a FIFO is refused (404), so the endpoint cannot read other files of the disk."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from poolkit import StepClock

from acdkit.ari.media import make_app, media, read_stored
from acdkit.config import RequestSettings
from acdkit.core.errors import InvalidInput
from acdkit.speech import tts
from acdkit.store.pool import Pool
from acdkit.store.requests import RequestStore, submit_request
from acdkit.testing import FakeJobQueue

pytestmark = pytest.mark.integration
BASE = "sound:http://127.0.0.1:8090"


@pytest.fixture
async def served(pool: Pool, clock: StepClock,
                 tmp_path: Path) -> AsyncIterator[tuple[TestClient, Path, str]]:
    """A client of the endpoint, the stored recording's file and its URL path."""
    settings = RequestSettings(audio_dir=str(tmp_path / "audio"), media_url=BASE[6:])
    task = await submit_request(pool, FakeJobQueue(), number="+12125550123", skill="sales",
                                audio=tts.speak("hello"), fmt="wav", now=clock.now(),
                                source="test", settings=settings)
    store = RequestStore(pool, settings)
    request = await store.get(task.id)
    assert request is not None
    async with TestClient(TestServer(make_app(store))) as client:
        yield client, store.audio_path(request.audio), media(settings, request,
                                                              "request").removeprefix(BASE)


def other_file(tmp_path: Path) -> Path:
    """A file outside the audio directory that the endpoint must never serve."""
    secret = tmp_path / "elsewhere" / "secret.wav"
    secret.parent.mkdir()
    secret.write_bytes(tts.speak("a secret"))
    return secret


async def test_the_stored_recording_is_served(served: tuple[TestClient, Path, str]) -> None:
    client, _, path = served
    assert (await client.get(path)).status == 200


@pytest.mark.parametrize("suffix", ["%0A", "%0D%0A", "%00", "/", ".", "%20"])
async def test_a_file_name_with_anything_after_it_is_not_found(
        served: tuple[TestClient, Path, str], suffix: str) -> None:
    client, _, path = served
    assert (await client.get(path + suffix)).status == 404


async def test_a_stored_file_replaced_by_a_symlink_is_not_followed(
        served: tuple[TestClient, Path, str], tmp_path: Path) -> None:
    client, stored, path = served
    stored.unlink()
    stored.symlink_to(other_file(tmp_path))
    assert (await client.get(path)).status == 404
    with pytest.raises(InvalidInput):
        read_stored(stored)


async def test_a_stored_file_replaced_by_a_hard_link_is_refused(
        served: tuple[TestClient, Path, str], tmp_path: Path) -> None:
    client, stored, path = served
    stored.unlink()
    os.link(other_file(tmp_path), stored)
    assert (await client.get(path)).status == 404


async def test_a_stored_file_replaced_by_a_fifo_does_not_block(
        served: tuple[TestClient, Path, str]) -> None:
    client, stored, path = served
    stored.unlink()
    os.mkfifo(stored)
    try:
        assert (await client.get(path, timeout=5)).status == 404
    finally:  # a reader stuck on the FIFO (the defect) would hold the test server: free it
        with contextlib.suppress(OSError):
            os.close(os.open(stored, os.O_WRONLY | os.O_NONBLOCK))
