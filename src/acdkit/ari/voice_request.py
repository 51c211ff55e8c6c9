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
from dataclasses import dataclass

from acdkit.ari import events as ev
from acdkit.ari.bridges import Bridges
from acdkit.ari.caller_number import confirm_number
from acdkit.ari.control import AriControl
from acdkit.ari.session import ChannelGone, Session
from acdkit.config import RequestSettings
from acdkit.core.errors import InvalidTransition
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskEvent, TaskKind
from acdkit.ports import Clock, JobQueue
from acdkit.store.pool import Pool
from acdkit.store.requests import submit_request

log = logging.getLogger(__name__)
KEY_WAIT = 5.0


@dataclass(frozen=True)
class VoiceRequests:
    """What taking a voice request uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    jobs: JobQueue
    numbers: NumberPolicy
    settings: RequestSettings  # [requests]
    bridges: Bridges  # a waiting caller leaves its holding bridge


async def record(control: AriControl, session: Session, name: str, *, max_seconds: int,
                 max_silence: int) -> bool:
    """Record ``session`` into the stored recording ``name`` after a beep until ``#``,
    silence or ``max_seconds``; True when Asterisk finished it. Raises ``ChannelGone`` when
    the channel hangs up (Asterisk keeps what was recorded so far)."""
    session.clear_digits()
    if not await control.record(session.channel_id, name, max_duration=max_seconds,
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


async def leave_request(ctx: VoiceRequests, session: Session, task: Task) -> bool:
    """Take a voice request from a waiting caller; True when the caller left the line."""
    number = await confirm_number(ctx.pool, ctx.numbers, session, task)
    if number is None:
        return False
    try:
        await ctx.pool.move_task(task.id, TaskEvent.CANCEL, ctx.clock.now(),
                                 outcome="caller left a voice request")
    except InvalidTransition:
        log.info("task %s: an agent is taking the call; no voice request", task.id)
        return False
    await ctx.control.remove_from_bridge(ctx.bridges.hold_id(task.skill), session.channel_id)
    await take(ctx, session, task.skill, f"overflow:{task.source}", number)
    return True


async def direct_request(ctx: VoiceRequests, session: Session, skill: str) -> None:
    """A caller sent straight to a voice request by the dialplan or an IVR choice:
    ``Stasis(acdkit,voice-request,<skill>)``."""
    await ctx.control.answer(session.channel_id)
    now = ctx.clock.now()
    call = Task(id=uuid.uuid4().hex[:16], kind=TaskKind.CALL, skill=skill, created_at=now,
                enqueued_at=now, number=session.caller_number, source="voice-request")
    number = await confirm_number(ctx.pool, ctx.numbers, session, call)
    if number is None:
        await session.play(["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
        await ctx.control.hangup(session.channel_id)
        return
    await take(ctx, session, skill, "stasis:voice-request", number)


async def take(ctx: VoiceRequests, session: Session, skill: str, source: str, number: str) -> None:
    """Record, review and store the request, say its reference and hang up."""
    name = f"vr-{uuid.uuid4().hex[:16]}"
    spoken = False
    try:
        spoken = await _record_and_review(ctx, session, name)
    except ChannelGone:
        spoken = True  # hung up after speaking: keep what was said
        raise
    finally:
        ref = await _submit(ctx, session, skill, source, number, name) if spoken else None
    if ref is None:
        await session.play(["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
    else:
        await session.play(["sound:acdkit/vr-saved", f"digits:{ref}", "sound:acdkit/goodbye"])
    await ctx.control.hangup(session.channel_id)


async def _record_and_review(ctx: VoiceRequests, session: Session, name: str) -> bool:
    limits = ctx.settings
    await session.play(["sound:acdkit/vr-prompt"])
    for _ in range(3):
        if not await record(ctx.control, session, name, max_seconds=limits.max_seconds,
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


async def _submit(ctx: VoiceRequests, session: Session, skill: str, source: str, number: str,
                  name: str) -> str | None:
    """Fetch the recording, store the request; the reference, or None when there was none."""
    audio = await ctx.control.download_recording(name)
    if not audio:
        log.warning("channel %s: recording %s is missing or empty", session.channel_id, name)
        return None
    request = await submit_request(ctx.pool, ctx.jobs, number=number, skill=skill,
                                   audio=audio, fmt="wav", now=ctx.clock.now(), source=source,
                                   settings=ctx.settings)
    await ctx.control.delete_recording(name)
    log.info("channel %s left voice request %s for %s", session.channel_id, request.id, number)
    return request.attributes.get("ref", "")
