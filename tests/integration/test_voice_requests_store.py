"""Voice requests against a real Redis: submit, transcribe (real engines on espeak-ng audio
at 8 kHz), bad audio, a text reply and its delivery with retries through the command channel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from poolkit import StepClock

from acdkit.config import RequestSettings
from acdkit.core.callbacks import DialOutcome, RetryPolicy
from acdkit.core.dtmf import BusinessHours
from acdkit.core.numbers import NumberPolicy
from acdkit.core.requests import RequestStatus
from acdkit.core.tasks import TaskKind, TaskState
from acdkit.services.voice_requests import Delivery, recover_deliveries, run_transcription
from acdkit.speech import asr, tts
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.requests import RequestStore, store_reply, submit_request
from acdkit.testing import FakeJobQueue

pytestmark = pytest.mark.integration
NUMBER = "+12125550123"
ANY_HOUR = NumberPolicy(default_region="US",
                        calling_hours=BusinessHours.parse("mon-sun 00:00-24:00"))
SENTENCE = "my printer is broken please send a technician"


@pytest.fixture
def settings(tmp_path: Path) -> RequestSettings:
    return RequestSettings(audio_dir=str(tmp_path / "audio"), hold_for_transcript=120)


async def _submit(pool: Pool, jobs: FakeJobQueue, settings: RequestSettings, audio: bytes,
                  clock: StepClock, fmt: str = "wav") -> RequestStore:
    task = await submit_request(pool, jobs, number=NUMBER, skill="sales", audio=audio, fmt=fmt,
                                now=clock.now(), source="test", settings=settings)
    assert task.kind is TaskKind.VOICE_REQUEST and task.state is TaskState.SCHEDULED
    assert jobs.jobs == [("speech", "acdkit.jobs.transcribe", (task.id,),
                          f"transcribe-{task.id}", None)]
    return RequestStore(pool, settings)


async def test_an_espeak_sentence_at_8khz_is_transcribed_and_released(
        pool: Pool, clock: StepClock, settings: RequestSettings) -> None:
    jobs = FakeJobQueue()
    store = await _submit(pool, jobs, settings, tts.speak(SENTENCE), clock)
    task_id = jobs.jobs[0][2][0]
    status = await run_transcription(store, asr.transcriber("whisper"), task_id, clock)
    request = await store.get(task_id)
    assert request is not None and status == "transcribed"
    words = request.transcript.lower()
    assert "printer" in words and "broken" in words, words
    assert request.confidence is not None and 0 < request.confidence <= 1
    assert request.engine == "whisper"
    task = await pool.get_task(task_id)
    assert task is not None and task.state is TaskState.QUEUED  # released before its due time
    assert (await store.find(request.ref)).task_id == task_id


@pytest.mark.parametrize(("audio", "why"), [
    (tts.speak("x")[:44], "too short"),  # a WAV header and no speech: an empty recording
    (b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(256)) * 20, "not a readable WAV"),
])
async def test_bad_audio_ends_untranscribed_and_nothing_is_lost(
        pool: Pool, clock: StepClock, settings: RequestSettings, audio: bytes, why: str) -> None:
    jobs = FakeJobQueue()
    store = await _submit(pool, jobs, settings, audio, clock)
    task_id = jobs.jobs[0][2][0]
    assert await run_transcription(store, asr.transcriber("pocketsphinx"), task_id,
                                   clock) == "untranscribed"
    request = await store.get(task_id)
    assert request is not None and why in request.error
    assert store.audio_path(request.audio).read_bytes() == audio  # the audio is kept as is
    task = await pool.get_task(task_id)
    assert task is not None and task.state is TaskState.QUEUED  # an agent still gets it
    history = [e.event for e in await pool.audit.history(task_id)]
    assert "request_untranscribed" in history, history


async def test_a_text_reply_is_delivered_after_a_retry(
        pool: Pool, clock: StepClock, settings: RequestSettings) -> None:
    jobs = FakeJobQueue()
    store = await _submit(pool, jobs, settings, tts.speak(SENTENCE), clock)
    task_id = jobs.jobs[0][2][0]
    await store_reply(store, jobs, task_id, clock.now(), text="On Monday", by="1")
    assert jobs.jobs[-1][:3] == ("requests", "acdkit.jobs.deliver_reply", (task_id,))
    calls = CallbackStore(pool)
    delivery = Delivery(store, calls, jobs, RetryPolicy(max_attempts=3, intervals=(60.0,)),
                        ANY_HOUR,
                        wait_timeout=10, clock=clock)
    seen: list[dict[str, object]] = []

    async def fake_serve(outcome: DialOutcome) -> None:
        command = await calls.next_command(5)
        assert command is not None
        seen.append(command)
        await calls.finish_attempt(task_id, int(command["attempt"]), outcome, clock.now())

    outcomes = await asyncio.gather(delivery.run(task_id), fake_serve(DialOutcome.NO_ANSWER))
    assert outcomes[0] == "no_answer"
    assert jobs.jobs[-1][4] == clock.now() + 60  # the next call by the retry policy
    outcomes = await asyncio.gather(delivery.run(task_id), fake_serve(DialOutcome.ANSWERED))
    assert outcomes[0] == "answered"
    assert [(c["op"], c["attempt"], c["number"]) for c in seen] == [
        ("deliver_reply", 1, NUMBER), ("deliver_reply", 2, NUMBER)]
    request = await store.get(task_id)
    assert request is not None
    assert (request.status, request.deliveries) == (RequestStatus.DELIVERED, 2)
    assert await delivery.run(task_id) == "nothing"  # delivered: a stray job does nothing
    history = [e.event for e in await pool.audit.history(task_id)]
    for wanted in ("request_replied", "attempt_no_answer", "attempt_answered",
                   "request_delivered"):
        assert wanted in history, history


async def test_delivery_gives_up_after_the_last_attempt(
        pool: Pool, clock: StepClock, settings: RequestSettings) -> None:
    jobs = FakeJobQueue()
    store = await _submit(pool, jobs, settings, tts.speak(SENTENCE), clock)
    task_id = jobs.jobs[0][2][0]
    await store_reply(store, jobs, task_id, clock.now(), text="On Monday")
    calls = CallbackStore(pool)
    delivery = Delivery(store, calls, jobs, RetryPolicy(max_attempts=1, intervals=(60.0,)),
                        ANY_HOUR,
                        wait_timeout=1, clock=clock)
    assert await delivery.run(task_id) == "failed"  # nobody answered the command: timeout
    request = await store.get(task_id)
    assert request is not None and request.status is RequestStatus.UNDELIVERED
    assert "failed" in request.error


async def test_a_delivery_a_dead_worker_left_is_resumed_not_dialed_again(
        pool: Pool, clock: StepClock, settings: RequestSettings) -> None:
    jobs = FakeJobQueue()
    store = await _submit(pool, jobs, settings, tts.speak(SENTENCE), clock)
    task_id = jobs.jobs[0][2][0]
    await store_reply(store, jobs, task_id, clock.now(), text="On Monday")
    calls = CallbackStore(pool, lock_ttl=0.2)
    assert await recover_deliveries(store, calls, jobs) == []  # nothing opened yet
    # A worker opened attempt 1 and died waiting: its lock expires, serve reports later.
    dead = Delivery(store, calls, jobs, RetryPolicy(max_attempts=2, intervals=(60.0,)),
                    ANY_HOUR, wait_timeout=0.3, clock=clock)
    runner = asyncio.create_task(dead.run(task_id))
    command = await calls.next_command(5)
    assert command is not None
    runner.cancel()  # it ends: a cancellation lost in redis-py went on delivering, once
    await asyncio.wait([runner], timeout=5)
    assert runner.cancelled()
    await asyncio.sleep(0.3)
    await calls.finish_attempt(task_id, 1, DialOutcome.ANSWERED, clock.now())
    [job] = await recover_deliveries(store, calls, jobs)
    assert job == jobs.jobs[-1][3]
    assert await recover_deliveries(store, calls, jobs) == [job]  # the same job id: once
    assert await dead.run(task_id) == "answered"  # resumed attempt 1, no second call
    assert await calls.next_command(0) is None
    assert await store.delivering() == []
    request = await store.get(task_id)
    assert request is not None and request.status is RequestStatus.DELIVERED
