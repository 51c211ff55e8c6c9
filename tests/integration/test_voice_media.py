"""The HTTP endpoint Asterisk fetches voice-request audio from (ari/media.py), on a real
Redis: 8 kHz WAV for the recording, the transcript and a text reply; 404 for anything else."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from poolkit import StepClock

from acdkit.ari.media import make_app, media, name_media
from acdkit.config import RequestSettings
from acdkit.core.requests import RequestEvent
from acdkit.core.tasks import Task, TaskKind
from acdkit.speech import tts
from acdkit.store.pool import Pool
from acdkit.store.requests import RequestStore, store_reply, submit_request
from acdkit.testing import FakeJobQueue

pytestmark = pytest.mark.integration


def _rate_and_seconds(body: bytes) -> tuple[int, float]:
    with wave.open(io.BytesIO(body)) as wav:
        return wav.getframerate(), wav.getnframes() / wav.getframerate()


async def test_audio_for_asterisk(pool: Pool, clock: StepClock, tmp_path: Path) -> None:
    settings = RequestSettings(audio_dir=str(tmp_path), media_url="http://127.0.0.1:8090")
    jobs = FakeJobQueue()
    task = await submit_request(pool, jobs, number="+12125550123", skill="sales",
                                audio=tts.speak("my printer is broken"), fmt="wav",
                                now=clock.now(), source="test", settings=settings)
    store = RequestStore(pool, settings)
    before = await store.get(task.id)
    assert before is not None
    await store.move(task.id, RequestEvent.TRANSCRIBED, clock.now(), transcript="printer")
    after = await store.get(task.id)
    assert after is not None
    uri = media(settings, after, "transcript")
    assert uri.startswith(f"sound:http://127.0.0.1:8090/vr/{task.id}/transcript-")
    assert uri != media(settings, before, "transcript")  # a new transcript, a new URL
    async with TestClient(TestServer(make_app(store))) as client:
        for what in ("request", "transcript"):
            path = media(settings, after, what).removeprefix("sound:http://127.0.0.1:8090")
            resp = await client.get(path)
            assert resp.status == 200 and resp.content_type == "audio/wav"
            rate, seconds = _rate_and_seconds(await resp.read())
            assert rate == 8000 and seconds > 0.5
        resp = await client.get(f"/vr/{task.id}/reply-00.wav")
        assert resp.status == 404  # no reply yet
        await store_reply(store, jobs, task.id, clock.now(), text="On Monday")
        replied = await store.get(task.id)
        assert replied is not None
        path = media(settings, replied, "reply").removeprefix("sound:http://127.0.0.1:8090")
        assert (await client.get(path)).status == 200
        for bad in ("/vr/nope/request-00.wav", f"/vr/{task.id}/../../etc-00.wav",
                    f"/vr/{task.id}/secret.wav"):
            assert (await client.get(bad)).status == 404, bad


async def test_an_outbound_customer_name_is_spoken_for_the_whisper(pool: Pool, clock: StepClock,
                                                                   tmp_path: Path) -> None:
    settings = RequestSettings(audio_dir=str(tmp_path), media_url="http://127.0.0.1:8090")
    named = Task(id="lead-1", kind=TaskKind.OUTBOUND, skill="sales", created_at=clock.now(),
                 enqueued_at=clock.now(), number="+12125550142", name="Ada Lovelace")
    unnamed = Task(id="lead-2", kind=TaskKind.OUTBOUND, skill="sales", created_at=clock.now(),
                   enqueued_at=clock.now(), number="+12125550143")
    await pool.add_tasks([named, unnamed])
    [uri] = name_media(settings, named)
    assert name_media(settings, unnamed) == []
    async with TestClient(TestServer(make_app(RequestStore(pool, settings)))) as client:
        resp = await client.get(uri.removeprefix("sound:http://127.0.0.1:8090"))
        assert resp.status == 200
        rate, seconds = _rate_and_seconds(await resp.read())
        assert rate == 8000 and seconds > 0.5
        assert (await client.get("/task/lead-2/name-00.wav")).status == 404
        assert (await client.get("/task/nope/name-00.wav")).status == 404
