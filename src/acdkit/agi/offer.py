"""The overflow offer over AGI: the same keys, prompts, number policy and booking as the
Stasis offer (``ari/callback_offer.py``), driven through AGI commands.

1 instant callback (keeps the caller's place: ``ACDKIT_SINCE``), 2 a scheduled one (HHMM),
nothing or another key: keep waiting. The caller ID is read back (1 = yes, 2 = another) or a
number is keyed in; it passes ``numbers.normalize`` before anything is stored, and refusals
are spoken with the Stasis prompts. The callback is stored as a dialplan-mode task (skill
``queue:<name>``, attribute ``acdkit_mode=dialplan``: see ``dialplan_vars``) that ``acdkit agi``
dials back through AMI into ``Queue()``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from acdkit import dialplan_vars as dv
from acdkit.agi.session import AgiChannel
from acdkit.config import Settings
from acdkit.core import overflow
from acdkit.core.callbacks import reference
from acdkit.core.dtmf import BusinessHours, parse_hhmm, say_number, say_when
from acdkit.core.errors import BadDtmf, NumberRejected
from acdkit.core.numbers import NumberPolicy, normalize, prompt_for
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.ports import Clock
from acdkit.store.callbacks import CallbackStore

log = logging.getLogger(__name__)
KEY_WAIT = 6.0


@dataclass(frozen=True)
class Caller:
    """Who is on the line: the queue they waited in, their number, since when they wait."""

    queue: str
    number: str  # as received; may be empty or not E.164
    since: float
    channel: str = ""


@dataclass
class Offer:
    """What the offer needs: settings, policy, store and clock."""

    settings: Settings
    numbers: NumberPolicy
    callbacks: CallbackStore
    clock: Clock
    voice: Callable[[AgiChannel, Caller], Awaitable[Task | None]] | None = None  # key 3

    async def run(self, agi: AgiChannel, caller: Caller) -> Task | None:
        """Make the offer; the booked callback (or the voice request, with ``voice``), or
        None when the caller keeps waiting."""
        choice = overflow.choice(await agi.ask(["sound:acdkit/overflow-offer"], KEY_WAIT))
        if choice is overflow.OfferChoice.VOICE_REQUEST and self.voice is not None:
            return await self.voice(agi, caller)
        if choice not in (overflow.OfferChoice.INSTANT_CALLBACK,
                          overflow.OfferChoice.SCHEDULED_CALLBACK):
            return None
        number = await self.confirm_number(agi, caller)
        if number is None:
            return None
        due_at = None
        if choice is overflow.OfferChoice.SCHEDULED_CALLBACK:
            due_at = await self.choose_time(agi)
            if due_at is None:
                return None
        booked = await self.book(agi, caller, number, due_at)
        if booked is not None:
            await agi.play(["sound:acdkit/cb-booked", f"digits:{reference(booked.id)}"])
        return booked

    async def confirm_number(self, agi: AgiChannel, caller: Caller) -> str | None:
        """The caller ID read back (1 = yes), or a number keyed in; E.164 or None."""
        raw = caller.number
        for _ in range(3):
            number = await self._normalized(agi, raw) if raw else None
            if number is not None:
                region = self.settings.center.default_region
                key = await agi.ask(["sound:acdkit/cb-number-is", *say_number(number, region),
                                     "sound:acdkit/cb-number-confirm"], KEY_WAIT)
                if key == "1":
                    return number
            raw = await agi.read_digits("acdkit/cb-enter-number", 20, KEY_WAIT)
            if not raw:
                return None
        return None

    async def _normalized(self, agi: AgiChannel, raw: str) -> str | None:
        try:
            return normalize(raw, self.numbers)
        except NumberRejected as refused:
            log.info("AGI offer: number refused: %s", refused.reason)
            await agi.play([prompt_for(refused.reason)])
            return None

    async def choose_time(self, agi: AgiChannel) -> float | None:
        """A time keyed as HHMM (today, or tomorrow when past), read back; epoch or None."""
        tz = ZoneInfo(self.settings.center.timezone)
        o = self.settings.overflow
        hours = BusinessHours.parse(o.business_hours, "overflow.business_hours")
        for _ in range(2):
            digits = await agi.read_digits("acdkit/cb-enter-time", 4, KEY_WAIT)
            now = datetime.fromtimestamp(self.clock.now(), tz)
            try:
                when = parse_hhmm(digits, now, tz, business_hours=hours,
                                  horizon=timedelta(days=o.horizon_days))
            except BadDtmf as bad:
                log.info("AGI offer: time %r refused: %s", digits, bad.reason)
                await agi.play(["sound:acdkit/refused-time"])
                continue
            key = await agi.ask(["sound:acdkit/cb-time-is", *say_when(when, now),
                                 "sound:acdkit/cb-time-confirm"], KEY_WAIT)
            if key == "1":
                return when.astimezone(UTC).timestamp()
        return None

    async def book(self, agi: AgiChannel, caller: Caller, number: str,
                   due_at: float | None) -> Task | None:
        """Store the callback (or update the number's pending one); None when refused."""
        now = self.clock.now()
        task = dialplan_callback(caller, number, now, due_at)
        try:
            result = await self.callbacks.book_callback(
                task, policy=self.numbers, caller_number=caller.number, now=now,
                line=caller.channel)
        except NumberRejected as refused:
            log.info("AGI offer: callback refused: %s", refused.reason)
            await agi.play([prompt_for(refused.reason)])
            return None
        log.info("AGI offer: callback %s for %s in queue %s%s", result.task.id, number,
                 caller.queue, " (updated)" if result.updated else "")
        return result.task


def dialplan_callback(caller: Caller, number: str, now: float, due_at: float | None) -> Task:
    """A new dialplan-mode callback task (queued, or scheduled at ``due_at``)."""
    place = caller.since if 0 < caller.since <= now else now
    return Task(id=uuid.uuid4().hex[:16], kind=TaskKind.CALLBACK,
                skill=dv.dialplan_skill(caller.queue), created_at=now,
                enqueued_at=due_at or place,
                state=TaskState.SCHEDULED if due_at else TaskState.QUEUED, due_at=due_at,
                number=number, source="agi:callback-offer",
                required=MappingProxyType({dv.MODE_ATTRIBUTE: dv.MODE_DIALPLAN}),
                attributes=MappingProxyType({"queue": caller.queue,
                                             "channel": caller.channel[:64]}))
