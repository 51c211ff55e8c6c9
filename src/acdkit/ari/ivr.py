"""The IVR flow: greet, prompt, read one key, route to a skill (re-prompt, then the default)."""

from __future__ import annotations

import logging

from acdkit.ari.session import Session
from acdkit.core import ivr

log = logging.getLogger(__name__)


async def choose_skill(session: Session, menu: ivr.Menu) -> str:
    """Play the menu and return the chosen skill; a key pressed during a prompt counts."""
    await session.play(menu.greeting, interruptible=True)
    attempt = 1
    while True:
        key = await session.play(menu.prompt, interruptible=True)
        if key is None:
            key = await session.read_key(menu.timeout)
        else:
            session.digits.pop(0)
        outcome = ivr.answer(menu, key, attempt)
        if isinstance(outcome, ivr.Route):
            log.debug("channel %s chose %s (key %s)", session.channel_id, outcome.skill, key)
            session.clear_digits()
            return outcome.skill
        session.clear_digits()
        await session.play(menu.invalid if key else ())
        attempt = outcome.attempt
