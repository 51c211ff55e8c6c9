"""The caller leaves a spoken service request (overflow offer 3, or straight from the
dialplan or an IVR choice: ``Stasis(acdkit,voice-request,<skill>)``) instead of waiting.

The number for the answer is read back (as for a callback); the caller leaves the line
(the call task is cancelled), hears a prompt and a beep and speaks; ``#``, silence or the
maximum length ends the recording. 1 sends it, 2 plays it back, 3 records again; no key sends
it, and so does hanging up after speaking (nothing said is lost). The recording is fetched
over ARI (``/recordings/stored/{name}/file``: no shared disk with the PBX), deleted on
Asterisk and stored with the work order (``store.requests.submit_request``); the caller hears
the reference number.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from acdkit.ari import events as ev
from acdkit.ari.callback_offer import confirm_number
from acdkit.ari.session import ChannelGone, Session
from acdkit.core.errors import InvalidTransition
from acdkit.core.tasks import Task, TaskEvent, TaskKind
from acdkit.store.requests import submit_request

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)
KEY_WAIT = 5.0


async def record(app: StasisApp, session: Session, name: str, *, max_seconds: int,
                 max_silence: int) -> bool:
    """Record ``session`` into the stored recording ``name`` after a beep until ``#``,
    silence or ``max_seconds``; True when Asterisk finished it. Raises ``ChannelGone`` when
    the channel hangs up (Asterisk keeps what was recorded so far)."""
    session.clear_digits()
    if not await app.control.record(session.channel_id, name, max_duration=max_seconds,
                                    max_silence=max_silence, beep=True, terminate_on="#"):
        raise ChannelGone(session.channel_id)
    while True:
        event = await session.next_event(max_seconds + 15)
        if event is None:
            log.warning("recording %s: no end reported", name)
            return False
        if isinstance(event, ev.RecordingFinished | ev.RecordingFailed) and event.name == name:
            session.clear_digits()
            return isinstance(event, ev.RecordingFinished)


async def leave_request(app: StasisApp, session: Session, task: Task) -> bool:
    """Take a voice request from a waiting caller; True when the caller left the line."""
    number = await confirm_number(app, session, task)
    if number is None:
        return False
    try:
        await app.pool.move_task(task.id, TaskEvent.CANCEL, app.clock.now(),
                                 outcome="caller left a voice request")
    except InvalidTransition:
        log.info("task %s: an agent is taking the call; no voice request", task.id)
        return False
    await app.control.remove_from_bridge(app.hold_bridge_id(task.skill), session.channel_id)
    await take(app, session, task.skill, f"overflow:{task.source}", number)
    return True


async def direct_request(app: StasisApp, session: Session, skill: str) -> None:
    """A caller sent straight to a voice request by the dialplan or an IVR choice:
    ``Stasis(acdkit,voice-request,<skill>)``."""
    await app.control.answer(session.channel_id)
    now = app.clock.now()
    call = Task(id=uuid.uuid4().hex[:16], kind=TaskKind.CALL, skill=skill, created_at=now,
                enqueued_at=now, number=session.caller_number, source="voice-request")
    number = await confirm_number(app, session, call)
    if number is None:
        await session.play(["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
        await app.control.hangup(session.channel_id)
        return
    await take(app, session, skill, "stasis:voice-request", number)


async def take(app: StasisApp, session: Session, skill: str, source: str, number: str) -> None:
    """Record, review and store the request, say its reference and hang up."""
    name = f"vr-{uuid.uuid4().hex[:16]}"
    spoken = False
    try:
        spoken = await _record_and_review(app, session, name)
    except ChannelGone:
        spoken = True  # hung up after speaking: keep what was said
        raise
    finally:
        ref = await _submit(app, session, skill, source, number, name) if spoken else None
    if ref is None:
        await session.play(["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
    else:
        await session.play(["sound:acdkit/vr-saved", f"digits:{ref}", "sound:acdkit/goodbye"])
    await app.control.hangup(session.channel_id)


async def _record_and_review(app: StasisApp, session: Session, name: str) -> bool:
    limits = app.settings.requests
    await session.play(["sound:acdkit/vr-prompt"])
    for _ in range(3):
        if not await record(app, session, name, max_seconds=limits.max_seconds,
                            max_silence=limits.max_silence):
            return False
        while True:
            await session.play(["sound:acdkit/vr-review"], interruptible=True)
            key = session.digits.pop(0) if session.digits else await session.read_key(KEY_WAIT)
            if key == "2":
                session.clear_digits()
                await session.play([f"recording:{name}"], interruptible=True)
                continue
            break
        if key != "3":
            return True
        await session.play(["sound:acdkit/vr-again"])
    return True


async def _submit(app: StasisApp, session: Session, skill: str, source: str, number: str,
                  name: str) -> str | None:
    """Fetch the recording, store the request; the reference, or None when there was none."""
    audio = await app.control.download_recording(name)
    if not audio:
        log.warning("channel %s: recording %s is missing or empty", session.channel_id, name)
        return None
    request = await submit_request(app.pool, app.jobs, number=number, skill=skill,
                                   audio=audio, fmt="wav", now=app.clock.now(), source=source,
                                   settings=app.settings.requests)
    await app.control.delete_recording(name)
    log.info("channel %s left voice request %s for %s", session.channel_id, request.id, number)
    return request.attributes.get("ref", "")
