"""The voice-request jobs: ``transcribe`` and ``deliver_reply`` (what they run is in
services/voice_requests.py)."""

from __future__ import annotations

import asyncio

from acdkit.config import load_settings
from acdkit.jobqueue import RqJobQueue
from acdkit.jobs.callbacks import with_store
from acdkit.messaging import messenger_for
from acdkit.policies import number_policy, retry_policy
from acdkit.ports import SystemClock
from acdkit.services.voice_requests import Delivery, run_transcription
from acdkit.speech.asr import transcriber
from acdkit.store.primary import primary_of
from acdkit.store.requests import RequestStore


def transcribe(task_id: str) -> str:
    """RQ job (queue ``speech``): transcribe voice request ``task_id``, release its work order."""
    settings = load_settings()
    engine = transcriber(settings.requests.engine, settings.requests.whisper_model)
    return asyncio.run(with_store(settings, lambda s: run_transcription(
        RequestStore(s.pool, settings.requests), engine, task_id, SystemClock())))


def deliver_reply(task_id: str) -> str:
    """RQ job (queue ``requests``): one delivery call of voice request ``task_id``'s reply."""
    settings = load_settings()
    jobs = RqJobQueue(primary_of(settings.redis))
    try:
        return asyncio.run(with_store(settings, lambda s: Delivery(
            RequestStore(s.pool, settings.requests), s, jobs, retry_policy(settings),
            number_policy(settings), wait_timeout=2 * settings.agents.ring_timeout + 120,
            messenger=messenger_for(settings)).run(task_id)))
    finally:
        jobs.close()
