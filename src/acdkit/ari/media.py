"""Audio for Asterisk without a shared disk: a small HTTP endpoint in ``serve``.

Asterisk plays ``sound:http://...wav`` through res_http_media_cache (loaded in the lab,
asterisk/etc/res_http_media_cache.conf; seen on 22.10.1), so the transcript and a text reply
(espeak-ng) and the recordings kept in ``requests.audio_dir`` reach a remote PBX as 8 kHz
WAV. Asterisk caches by URL: each URL carries a version (a hash of what it speaks) so a new
reply is never answered from the cache. Bind it to loopback or a private address only.
Its limits (connections, header, idle and response times, request size) are the
``requests.media_*`` settings (``httplimits.py``, docs/security.md).

    GET /vr/<task_id>/request-<v>.wav      the caller's recording
    GET /vr/<task_id>/transcript-<v>.wav   the transcript, spoken
    GET /vr/<task_id>/reply-<v>.wav        the reply: the agent's recording, or the text spoken
    GET /task/<task_id>/name-<v>.wav       a task's customer name, spoken (outbound whispers)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from acdkit.config import RequestSettings
from acdkit.core.errors import AcdError, InvalidInput
from acdkit.core.requests import ReplyKind, VoiceRequest
from acdkit.core.tasks import Task
from acdkit.httplimits import HttpLimits, LimitedListener
from acdkit.speech import audio, tts
from acdkit.store.requests import RequestStore

log = logging.getLogger(__name__)

_PATH = re.compile(r"(request|transcript|reply)-[0-9a-f]{1,16}\.wav")  # fullmatch: no "\n"
NO_TRANSCRIPT = "There is no transcript of this request."
SPEAKER = web.AppKey("speaker", tts.Speaker)


def version(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]


def media(settings: RequestSettings, request: VoiceRequest, what: str) -> str:
    """The ARI media URI that plays ``what`` (request, transcript, reply) of ``request``."""
    stamp = {"request": request.audio,
             "transcript": f"{request.transcript}|{request.status}",
             "reply": f"{request.reply_kind}|{request.reply_text}|{request.reply_audio}"}[what]
    base = settings.media_url.rstrip("/")
    return f"sound:{base}/vr/{request.task_id}/{what}-{version(stamp)}.wav"


def name_media(settings: RequestSettings, task: Task) -> list[str]:
    """The ARI media that says ``task``'s customer name (none when it has no name)."""
    if not task.name:
        return []
    base = settings.media_url.rstrip("/")
    return [f"sound:{base}/task/{task.id}/name-{version(task.name)}.wav"]


def speaker(settings: RequestSettings) -> tts.Speaker:
    """Text to speech with the ``requests.tts_*`` cache and limits."""
    cache = Path(settings.tts_cache_dir or Path(settings.audio_dir) / "tts")
    return tts.Speaker(cache, concurrency=settings.tts_concurrency,
                       timeout=settings.tts_timeout, max_files=settings.tts_cache_max_files)


async def render(store: RequestStore, speech: tts.Speaker, request: VoiceRequest,
                 what: str) -> bytes:
    """The 8 kHz WAV of ``what``; ``InvalidInput`` when there is nothing playable."""
    voice = store.settings.tts_voice
    if what == "transcript":
        return await speech.speak(request.transcript or NO_TRANSCRIPT, voice)
    if what == "reply" and request.reply_kind is ReplyKind.TEXT:
        return await speech.speak(request.reply_text, voice)
    name = request.audio if what == "request" else request.reply_audio
    if not name:
        raise InvalidInput(f"request {request.task_id} has no {what} audio")
    path = store.audio_path(name)
    data = await asyncio.to_thread(read_stored, path)
    return await asyncio.to_thread(audio.phone_wav, data, path.suffix or "wav")


def read_stored(path: Path) -> bytes:
    """The bytes of a stored audio file: never through a symlink (O_NOFOLLOW), only a
    regular file with no other name (a hard link could make any file of the disk look
    stored), never blocking on a FIFO. ``InvalidInput`` otherwise."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as err:  # ELOOP: the name is a symlink
        raise InvalidInput(f"audio {path.name!r} cannot be opened ({err.strerror})") from None
    with os.fdopen(fd, "rb") as stored:
        info = os.fstat(stored.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            raise InvalidInput(f"audio {path.name!r} is not a plain stored file")
        return stored.read()


def limits(settings: RequestSettings) -> HttpLimits:
    """The endpoint's limits from the ``requests.media_*`` settings."""
    return HttpLimits(settings.media_max_connections, settings.media_header_timeout,
                      settings.media_idle_timeout, settings.media_response_timeout,
                      settings.media_max_request_bytes)


def make_app(store: RequestStore, extra: Sequence[web.RouteDef] = ()) -> web.Application:
    """The media endpoint, and ``extra`` routes that share its listener (``/metrics``)."""
    speech = speaker(store.settings)

    async def serve_audio(http: web.Request) -> web.Response:
        task_id, name = http.match_info["task_id"], http.match_info["name"]
        found = _PATH.fullmatch(name)
        if found is None:
            raise web.HTTPNotFound()
        try:
            request = await store.get(task_id)
            if request is None:
                raise web.HTTPNotFound()
            body = await render(store, speech, request, found.group(1))
        except (AcdError, OSError) as err:
            log.warning("media %s/%s: %s", task_id, name, err)
            raise web.HTTPNotFound() from None
        log.info("media %s/%s: %d bytes", task_id, name, len(body))
        return web.Response(body=body, content_type="audio/wav")

    async def serve_name(http: web.Request) -> web.Response:
        task_id = http.match_info["task_id"]
        try:
            task = await store.pool.get_task(task_id)
            if task is None or not task.name:
                raise web.HTTPNotFound()
            body = await speech.speak(task.name, store.settings.tts_voice)
        except AcdError as err:
            log.warning("media name of %s: %s", task_id, err)
            raise web.HTTPNotFound() from None
        return web.Response(body=body, content_type="audio/wav")

    app = web.Application(client_max_size=store.settings.media_max_request_bytes)
    app[SPEAKER] = speech  # for tests and metrics: how many espeak-ng runs
    app.router.add_get("/vr/{task_id:[A-Za-z0-9_-]{1,64}}/{name}", serve_audio)
    app.router.add_get("/task/{task_id:[A-Za-z0-9_-]{1,64}}/{name:name-[0-9a-f]{1,16}\\.wav}",
                       serve_name)
    app.router.add_routes(extra)
    return app


async def run_media(store: RequestStore, extra: Sequence[web.RouteDef] = ()) -> None:
    """Serve the endpoint (and ``extra`` routes) on ``requests.media_listen`` until
    cancelled."""
    host, _, port = store.settings.media_listen.rpartition(":")
    bounds = limits(store.settings)
    runner = web.AppRunner(make_app(store, extra), **LimitedListener.runner_args(bounds))  # type: ignore[arg-type]
    listener = LimitedListener(runner, bounds, "media")
    runner.app.middlewares.append(listener.middleware)
    await runner.setup()
    server: asyncio.Server | None = None
    try:
        server = await listener.start(host or "127.0.0.1", int(port))
        bound = server.sockets[0].getsockname()
        log.info("voice request media on http://%s:%d", bound[0], bound[1])
    except OSError as err:  # calls go on; only voice requests lose their TTS and audio
        log.error("voice request media: cannot listen on %s: %s",
                  store.settings.media_listen, err)
    try:
        await asyncio.Event().wait()
    finally:
        if server is not None:
            server.close()
        await runner.cleanup()
