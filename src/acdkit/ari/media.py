"""Audio for Asterisk without a shared disk: a small HTTP endpoint in ``serve``.

Asterisk plays ``sound:http://...wav`` through res_http_media_cache (loaded in the lab,
asterisk/etc/res_http_media_cache.conf; seen on 22.10.1), so the transcript and a text reply
(espeak-ng) and the recordings kept in ``requests.audio_dir`` reach a remote PBX as 8 kHz
WAV. Asterisk caches by URL: each URL carries a version (a hash of what it speaks) so a new
reply is never answered from the cache. Bind it to loopback or a private address only.

    GET /vr/<task_id>/request-<v>.wav      the caller's recording
    GET /vr/<task_id>/transcript-<v>.wav   the transcript, spoken
    GET /vr/<task_id>/reply-<v>.wav        the reply: the agent's recording, or the text spoken
    GET /task/<task_id>/name-<v>.wav       a task's customer name, spoken (outbound whispers)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence

from aiohttp import web

from acdkit.config import RequestSettings
from acdkit.core.errors import AcdError, InvalidInput
from acdkit.core.requests import ReplyKind, VoiceRequest
from acdkit.core.tasks import Task
from acdkit.speech import audio, tts
from acdkit.store.requests import RequestStore

log = logging.getLogger(__name__)

_PATH = re.compile(r"^(request|transcript|reply)-[0-9a-f]{1,16}\.wav$")
NO_TRANSCRIPT = "There is no transcript of this request."


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


async def render(store: RequestStore, request: VoiceRequest, what: str) -> bytes:
    """The 8 kHz WAV of ``what``; ``InvalidInput`` when there is nothing playable."""
    voice = store.settings.tts_voice
    if what == "transcript":
        return await tts.speak_async(request.transcript or NO_TRANSCRIPT, voice=voice)
    if what == "reply" and request.reply_kind is ReplyKind.TEXT:
        return await tts.speak_async(request.reply_text, voice=voice)
    name = request.audio if what == "request" else request.reply_audio
    if not name:
        raise InvalidInput(f"request {request.task_id} has no {what} audio")
    path = store.audio_path(name)
    data = await asyncio.to_thread(path.read_bytes)
    return await asyncio.to_thread(audio.phone_wav, data, path.suffix or "wav")


def make_app(store: RequestStore, extra: Sequence[web.RouteDef] = ()) -> web.Application:
    """The media endpoint, and ``extra`` routes that share its listener (``/metrics``)."""
    async def serve_audio(http: web.Request) -> web.Response:
        task_id, name = http.match_info["task_id"], http.match_info["name"]
        found = _PATH.match(name)
        if found is None:
            raise web.HTTPNotFound()
        try:
            request = await store.get(task_id)
            if request is None:
                raise web.HTTPNotFound()
            body = await render(store, request, found.group(1))
        except (AcdError, OSError) as err:
            log.warning("media %s/%s: %s", task_id, name, err)
            raise web.HTTPNotFound() from None
        log.info("media %s/%s: %d bytes", task_id, name, len(body))
        return web.Response(body=body, content_type="audio/wav")

    async def serve_name(http: web.Request) -> web.Response:
        task = await store.pool.get_task(http.match_info["task_id"])
        if task is None or not task.name:
            raise web.HTTPNotFound()
        body = await tts.speak_async(task.name, voice=store.settings.tts_voice)
        return web.Response(body=body, content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/vr/{task_id:[A-Za-z0-9_-]{1,64}}/{name}", serve_audio)
    app.router.add_get("/task/{task_id:[A-Za-z0-9_-]{1,64}}/{name:name-[0-9a-f]{1,16}\\.wav}",
                       serve_name)
    app.router.add_routes(extra)
    return app


async def run_media(store: RequestStore, extra: Sequence[web.RouteDef] = ()) -> None:
    """Serve the endpoint (and ``extra`` routes) on ``requests.media_listen`` until
    cancelled."""
    host, _, port = store.settings.media_listen.rpartition(":")
    runner = web.AppRunner(make_app(store, extra), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port))
    try:
        await site.start()
        log.info("voice request media on http://%s", store.settings.media_listen)
    except OSError as err:  # calls go on; only voice requests lose their TTS and audio
        log.error("voice request media: cannot listen on %s: %s",
                  store.settings.media_listen, err)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
