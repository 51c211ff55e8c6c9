"""The caller's number for a callback or a voice request: the caller ID read back (1 = yes,
2 = another) or a number keyed in; it passes the dialing policy before anything is stored,
and a refusal is spoken in plain words and recorded in the task's history."""

from __future__ import annotations

import logging

from acdkit.ari.session import Session
from acdkit.core.dtmf import say_number
from acdkit.core.errors import NumberRejected
from acdkit.core.numbers import NumberPolicy, normalize, prompt_for
from acdkit.core.tasks import Task
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
KEY_WAIT = 6.0


async def confirm_number(pool: Pool, policy: NumberPolicy, session: Session,
                         task: Task) -> str | None:
    """The caller ID read back (1 = yes, 2 = another), or a number keyed in; E.164 or None."""
    raw = session.caller_number
    for _ in range(3):
        try:
            number = normalize(raw, policy) if raw else None
        except NumberRejected as refused:
            await refuse(pool, session, task, refused)
            number = None
        if number is not None:
            key = await ask(session, ["sound:acdkit/cb-number-is", *say_number(number),
                                       "sound:acdkit/cb-number-confirm"])
            if key == "1":
                return number
        await session.play(["sound:acdkit/cb-enter-number"], interruptible=True)
        raw = await session.read_digits(max_digits=20, timeout=KEY_WAIT)
        if not raw:
            return None
    return None


async def refuse(pool: Pool, session: Session, task: Task, refused: NumberRejected) -> None:
    """Say why in plain words, and record it in the task's history."""
    log.info("channel %s: number refused: %s", session.channel_id, refused.reason)
    await pool.audit.append(task.id, "callback_refused", reason=refused.reason,
                                number=refused.number[-20:])
    await session.play([prompt_for(refused.reason)])


async def ask(session: Session, media: list[str]) -> str | None:
    """Play ``media`` (a key stops it); the first key, or None after ``KEY_WAIT``."""
    session.clear_digits()
    key = await session.play(media, interruptible=True)
    if key:
        return session.digits.pop(0)
    return await session.read_key(KEY_WAIT)
