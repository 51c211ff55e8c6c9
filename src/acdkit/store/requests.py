"""Voice requests (work orders) in Redis, their audio on disk.

Hash ``acdkit:{pool}:vr:<task_id>`` holds a ``core.requests.VoiceRequest``; the sorted set
``acdkit:{pool}:vrs`` lists them by creation time, ``acdkit:{pool}:vr-number:<e164>`` those of
a number, ``acdkit:{pool}:vr-delivering`` holds
those whose reply waits for delivery, and ``acdkit:{pool}:vr-ref:<ref>`` maps a
spoken reference back to its task ids. Audio lives in ``requests.audio_dir``: the caller's
recording as ``<task_id>.<fmt>``, an agent's spoken reply as ``<task_id>-reply-<n>.wav``.
Every change is audited on the task's stream (``request_<status>``).

``submit_request`` is the one way in (Stasis flow, FastAGI route, tests): it writes the audio,
stores the request, puts its task in the pool held for its transcript (SCHEDULED, due after
``hold_for_transcript`` s; the ``transcribe`` job releases it at once when done) and queues the
``transcribe`` job on ``speech``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import fields
from pathlib import Path
from typing import Any, cast

from redis.exceptions import WatchError

from acdkit.config import RequestSettings
from acdkit.core.callbacks import reference
from acdkit.core.errors import InvalidInput, NotFound, Refused
from acdkit.core.requests import ReplyKind, RequestEvent, RequestStatus, VoiceRequest, transition
from acdkit.core.self_service import ADDABLE
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.ports import JobQueue
from acdkit.speech.audio import FORMATS
from acdkit.store.codec import encode_float
from acdkit.store.connection import guarded
from acdkit.store.keys import check_id, check_number
from acdkit.store.pool import Pool

SPEECH_QUEUE, REQUESTS_QUEUE = "speech", "requests"
TRANSCRIBE = "acdkit.jobs.transcribe"
DELIVER_REPLY = "acdkit.jobs.deliver_reply"
_FLOATS = {"created_at", "updated_at"}


def _encode(request: VoiceRequest) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in fields(request):
        value = getattr(request, f.name)
        if value is None:
            out[f.name] = ""
        elif isinstance(value, float):
            out[f.name] = encode_float(value)
        else:
            out[f.name] = str(value)
    return out


def _decode(raw: dict[str, str]) -> VoiceRequest:
    try:
        values: dict[str, Any] = {f.name: raw[f.name] for f in fields(VoiceRequest)
                                  if f.name in raw}
        for name in _FLOATS:
            values[name] = float(values.get(name) or 0.0)
        values["confidence"] = float(raw["confidence"]) if raw.get("confidence") else None
        values["deliveries"] = int(raw.get("deliveries") or 0)
        values["status"] = RequestStatus(raw["status"])
        values["reply_kind"] = ReplyKind(raw.get("reply_kind", ""))
        return VoiceRequest(**values)
    except (KeyError, ValueError, TypeError) as err:
        raise InvalidInput(f"voice request record is malformed ({err})") from None


class RequestStore:
    """The voice requests of one pool and the directory that holds their audio."""

    def __init__(self, pool: Pool, settings: RequestSettings) -> None:
        self.pool = pool
        self.redis = pool.redis
        self.settings = settings
        self.audio_dir = Path(settings.audio_dir)

    def key(self, task_id: str) -> str:
        return f"{self.pool.keys.base}vr:{check_id(task_id, 'task id')}"

    def _ref_key(self, ref: str) -> str:
        return f"{self.pool.keys.base}vr-ref:{check_id(ref, 'reference')}"

    def _number_key(self, number: str) -> str:
        return f"{self.pool.keys.base}vr-number:{check_number(number)}"

    @property
    def _index(self) -> str:
        return f"{self.pool.keys.base}vrs"

    @property
    def _delivering(self) -> str:
        return f"{self.pool.keys.base}vr-delivering"

    # -- audio ----------------------------------------------------------------------------

    def audio_path(self, name: str) -> Path:
        """The file ``name`` in the audio directory (a bare file name only)."""
        if not name or Path(name).name != name or name.startswith("."):
            raise InvalidInput(f"audio file name {name!r} is not a plain file name")
        return self.audio_dir / name

    def save_audio(self, name: str, data: bytes) -> Path:
        """Write ``data`` as ``name`` atomically (a reader never sees half a file)."""
        path = self.audio_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        return path

    # -- records --------------------------------------------------------------------------

    @guarded
    async def create(self, request: VoiceRequest) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.key(request.task_id), mapping=_encode(request))  # type: ignore[arg-type]
        pipe.zadd(self._index, {request.task_id: request.created_at})
        pipe.sadd(self._ref_key(request.ref), request.task_id)
        if request.number:
            pipe.sadd(self._number_key(request.number), request.task_id)
        await pipe.execute()
        await self.pool.audit.append(request.task_id, "request_recorded", now=request.created_at,
                                     ref=request.ref, audio=request.audio)

    @guarded
    async def get(self, task_id: str) -> VoiceRequest | None:
        raw = cast(dict[str, str], await self.redis.hgetall(self.key(task_id)))
        return _decode(raw) if raw else None

    async def find(self, ref_or_id: str) -> VoiceRequest:
        """The request with this task id or spoken reference; ``NotFound`` when there is none,
        ``InvalidInput`` when a reference names several (give the task id)."""
        found = await self.get(ref_or_id) if ref_or_id else None
        if found is not None:
            return found
        ids = sorted(cast(set[str], await self.redis.smembers(self._ref_key(ref_or_id))))
        if len(ids) > 1:
            raise InvalidInput(f"reference {ref_or_id} names {len(ids)} requests: "
                               f"use a task id ({', '.join(ids)})")
        request = await self.get(ids[0]) if ids else None
        if request is None:
            raise NotFound(f"no voice request {ref_or_id!r}")
        return request

    @guarded
    async def of_number(self, number: str) -> list[VoiceRequest]:
        """The requests whose reply goes to ``number`` (E.164), oldest first."""
        ids = cast(set[str], await self.redis.smembers(self._number_key(number)))
        found = [await self.get(task_id) for task_id in sorted(ids)]
        return sorted((r for r in found if r is not None), key=lambda r: r.created_at)

    @guarded
    async def add_addendum(self, task_id: str, recording: str, audio: bytes, fmt: str,
                           now: float, *, channel: str = "") -> str:
        """Attach the caller's recorded addition to request ``task_id``: ``recording`` is its
        name among Asterisk's stored recordings (the agent's work order plays
        ``recording:<name>``), ``audio`` a copy kept as ``<recording>.<fmt>`` in the audio
        directory. Named in ``addenda``, audited ``request_addendum`` with ``channel``.
        Returns the file name. Raises ``NotFound``, ``Refused`` once the request is answered
        or closed, ``InvalidInput`` for empty audio, an unknown format or a bad name."""
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS or not audio:
            raise InvalidInput("an addendum needs audio in a supported format")
        check_id(recording, "recording name")
        request = await self.get(task_id)
        if request is None:
            raise NotFound(f"no voice request {task_id!r}")
        if request.status not in ADDABLE:
            raise Refused(f"request {request.ref} is {request.status.value}: nothing to add")
        name = self.save_audio(f"{recording}.{fmt}", audio).name
        addenda = [a for a in request.addenda.split(",") if a and a != recording]
        await self.redis.hset(self.key(task_id), mapping={
            "addenda": ",".join([*addenda, recording]), "updated_at": encode_float(now)})
        await self.pool.audit.append(task_id, "request_addendum", now=now, recording=recording,
                                     file=name, channel=channel)
        return name

    @guarded
    async def newest(self, limit: int = 200) -> list[VoiceRequest]:
        """The newest ``limit`` requests, newest first."""
        ids = cast(list[str], await self.redis.zrevrange(self._index, 0, max(0, limit - 1)))
        found = [await self.get(task_id) for task_id in ids]
        return [r for r in found if r is not None]

    @guarded
    async def move(self, task_id: str, event: RequestEvent, now: float,
                   **changes: Any) -> VoiceRequest:
        """Apply ``event`` (``core.requests.transition`` with ``changes``) atomically and
        audit it. Raises ``NotFound``, ``InvalidTransition``."""
        key = self.key(task_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = cast(dict[str, str], await pipe.hgetall(key))
                    if not raw:
                        raise NotFound(f"no voice request {task_id!r}")
                    after = transition(_decode(raw), event, now, **changes)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, mapping=_encode(after))  # type: ignore[arg-type]
                    if after.status is RequestStatus.REPLIED:
                        pipe.sadd(self._delivering, task_id)
                    else:
                        pipe.srem(self._delivering, task_id)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        detail = {k: str(v)[:200] for k, v in changes.items() if v not in (None, "")}
        await self.pool.audit.append(task_id, f"request_{after.status}", now=now,
                                     created=encode_float(after.created_at),
                                     **cast(dict[str, Any], detail))
        return after

    @guarded
    async def delivering(self) -> list[str]:
        """The task ids of requests whose reply waits for delivery."""
        return sorted(cast(set[str], await self.redis.smembers(self._delivering)))

    @guarded
    async def claim_message(self, task_id: str, reply_at: float) -> bool:
        """True once per reply (``reply_at``, its ``updated_at``): the one try to deliver it
        as a text message before any call (a retried job does not send it twice)."""
        key = f"{self.pool.keys.base}vr-messaged:{check_id(task_id, 'task id')}"
        return bool(await self.redis.set(f"{key}:{encode_float(reply_at)}", "1", nx=True,
                                         ex=7 * 86_400))

    @guarded
    async def count_delivery(self, task_id: str) -> VoiceRequest:
        """Count one more delivery call of the current reply; the request after it."""
        await self.redis.hincrby(self.key(task_id), "deliveries", 1)
        request = await self.get(task_id)
        if request is None:
            raise NotFound(f"no voice request {task_id!r}")
        return request


async def submit_request(pool: Pool, jobs: JobQueue, *, number: str, skill: str, audio: bytes,
                         fmt: str, now: float, source: str,
                         settings: RequestSettings) -> Task:
    """Store a caller's spoken request and its work order; queue its transcription.

    ``number`` is the E.164 the reply goes to (validated by the caller of this function with
    ``core.numbers.normalize``); ``audio`` is the recording in format ``fmt`` (``wav``,
    ``ulaw``, ``alaw``, ``sln``, ...); bad audio is kept and ends as ``untranscribed``.
    ``settings`` are the ``[requests]`` settings the caller loaded. Returns the task (kind
    ``voice_request``, held for its transcript). Raises ``InvalidInput`` for an unknown format
    or no audio at all.
    """
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InvalidInput(f"audio format {fmt!r} is not supported")
    if not audio:
        raise InvalidInput("a voice request needs its recording: the audio is empty")
    store = RequestStore(pool, settings)
    task_id = uuid.uuid4().hex[:16]
    name = f"{task_id}.{fmt}"
    store.save_audio(name, audio)
    request = VoiceRequest(task_id=task_id, ref=reference(task_id), number=number, skill=skill,
                           created_at=now, audio=name, source=source, updated_at=now)
    task = Task(id=task_id, kind=TaskKind.VOICE_REQUEST, skill=skill, created_at=now,
                enqueued_at=now, state=TaskState.SCHEDULED,
                due_at=now + settings.hold_for_transcript, number=number, source=source,
                attributes={"ref": request.ref})
    await store.create(request)
    await pool.add_task(task, now)
    jobs.enqueue(SPEECH_QUEUE, TRANSCRIBE, task_id, job_id=f"transcribe-{task_id}")
    return task


def reply_file(task_id: str) -> str:
    """A new file name for a spoken reply of ``task_id`` (each reply its own file)."""
    return f"{task_id}-reply-{uuid.uuid4().hex[:6]}.wav"


async def store_reply(store: RequestStore, jobs: JobQueue, task_id: str, now: float, *,
                      text: str = "", audio: bytes = b"", by: str = "") -> VoiceRequest:
    """Record the reply (spoken ``audio`` as 8 kHz WAV, or ``text``) and queue its delivery.
    Raises ``NotFound``, ``InvalidTransition`` (closed, or an empty reply)."""
    if audio:
        name = reply_file(task_id)
        store.save_audio(name, audio)
        changes: dict[str, Any] = {"reply_kind": ReplyKind.VOICE, "reply_audio": name}
    else:
        changes = {"reply_kind": ReplyKind.TEXT, "reply_text": text}
    request = await store.move(task_id, RequestEvent.REPLY, now, replied_by=by, **changes)
    await enqueue_delivery(store, jobs, task_id)
    return request


async def enqueue_delivery(store: RequestStore, jobs: JobQueue, task_id: str,
                           at: float | None = None, attempt: int | None = None) -> str:
    """Queue ``deliver_reply`` for the next delivery call of ``task_id`` (or, with
    ``attempt``, for the job that resumes that open call). The job id names the call it works
    on, so the retry a resumed job queues never collides with the resumed job's own id."""
    request = await store.get(task_id)
    n = attempt if attempt is not None else (request.deliveries if request else 0) + 1
    stamp = request.updated_at if request else 0.0
    return jobs.enqueue(REQUESTS_QUEUE, DELIVER_REPLY, task_id,
                        job_id=f"deliver-{task_id}-{int(stamp)}-{n}", at=at)

