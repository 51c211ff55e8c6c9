"""What dialplan mode does with AMI events.

- ``QueueCallerAbandon``: the caller hung up in ``Queue()`` → a missed-call follow-up
  (``store.outbound.add_follow_up``, deduplicated by number; source ``ami:abandon``). Its skill
  is the queue's dialplan-mode skill (``queue:<name>``, dialled back through AMI into the
  queue) unless ``agi.follow_up_skill`` names one for acdkit agents. Seen on 22.10.1:
  app_queue sends ``QueueCallerAbandon`` for a caller whose ``Queue()`` *timed out* too (the
  overflow point, where the AGI offer runs). So an abandon counts only once the channel's
  ``Hangup`` follows; a ``VarSet`` of ``QUEUESTATUS`` (Queue() returned: timeout, full...)
  or no hang-up within ``ABANDON_WAIT`` seconds means the caller went on in the dialplan.
- ``QueueMember*`` / ``DeviceStateChange``: members' availability (``MemberBoard``), which
  paces the dial-back and answers the ``choose-agent`` route.
- ``AgentConnect``/``AgentComplete`` of ``Queue()``, and the answered ``DialEnd`` of a
  ``Dial()`` to a queue member (after ``choose-agent``): the call happened, so both sides may
  rate it (``RatingStore``, interaction ``agi-<caller uniqueid>``, the id the ``survey`` route
  looks up). These records are the only interactions the ``survey`` route rates: a FastAGI
  client cannot make one up (docs/security-policy.md). ``agi.ratings`` turns it off.
- ``AgentConnect``/``Hangup``/``DialEnd``: the end of a dial-back's call (``QueueDialBack``).

Events are handled in the order they come; each one's Redis work runs as its own task, and
an event that cannot be used is logged, never raised into panoramisk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from acdkit.core.errors import AcdError
from acdkit.core.members import MemberBoard
from acdkit.core.numbers import NumberPolicy
from acdkit.core.ratings import Interaction
from acdkit.dialplan_vars import dialplan_skill, interaction_id, safe_id
from acdkit.ports import Clock
from acdkit.store.outbound import add_follow_up
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore

log = logging.getLogger(__name__)
ABANDON_WAIT = 10.0
SERVED = frozenset({"AgentConnect", "AgentComplete"})  # a member took a Queue() call


@dataclass
class Watcher:
    """Turns AMI events into follow-ups, availability and rateable interactions."""

    pool: Pool
    numbers: NumberPolicy
    clock: Clock
    board: MemberBoard
    ratings: RatingStore | None = None
    follow_up_skill: str = ""  # "": the queue's dialplan-mode skill
    abandon_min_wait: float = 0.0  # seconds in Queue() before an abandon counts
    forward: list[Callable[[Mapping[str, str]], None]] = field(default_factory=list)
    _live: set[asyncio.Task[None]] = field(default_factory=set)
    _abandons: dict[str, asyncio.Future[bool]] = field(default_factory=dict)
    follow_ups: int = 0

    def on_event(self, event: Mapping[str, str]) -> None:
        name = event.get("Event", "")
        changed = self.board.apply(event)
        if changed is not None:
            log.debug("member %s of %s: %s%s", changed.name, changed.queue, changed.state,
                      " (paused)" if changed.paused else "")
        if name == "QueueCallerAbandon":  # its Hangup may come in the same read: wait now
            fate = asyncio.get_running_loop().create_future()
            self._abandons[event.get("Uniqueid", "")] = fate
            self._spawn(self.maybe_abandoned(event, fate))
        elif name == "Hangup" or (name == "VarSet" and event.get("Variable") == "QUEUESTATUS"):
            pending = self._abandons.pop(event.get("Uniqueid", ""), None)
            if pending is not None and not pending.done():
                pending.set_result(name == "Hangup")
        elif name in SERVED and self.ratings is not None:
            self._spawn(self.completed(event))
        elif name == "DialEnd" and event.get("DialStatus") == "ANSWER" and \
                self.ratings is not None:
            member = self._member_of(event.get("DestChannel", ""))
            if member:
                self._spawn(self.completed({**event, "MemberName": member}))
        for handler in self.forward:
            handler(event)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._live.add(task)
        task.add_done_callback(self._live.discard)

    async def drain(self) -> None:
        """Wait for the event work started so far (tests, shutdown)."""
        while self._live:
            await asyncio.gather(*list(self._live), return_exceptions=True)

    async def maybe_abandoned(self, event: Mapping[str, str],
                              fate: asyncio.Future[bool]) -> None:
        """Add the follow-up once the channel hung up (see the module docstring)."""
        unique_id = event.get("Uniqueid", "")
        try:
            hung_up = await asyncio.wait_for(fate, ABANDON_WAIT)
        except TimeoutError:
            hung_up = False
        finally:
            if self._abandons.get(unique_id) is fate:
                del self._abandons[unique_id]
        if hung_up:
            await self.abandoned(event)
        else:
            log.debug("QueueCallerAbandon %s: the caller went on in the dialplan", unique_id)

    async def abandoned(self, event: Mapping[str, str]) -> None:
        """A caller left ``Queue()`` before an agent answered: add a follow-up."""
        queue, number = event.get("Queue", ""), event.get("CallerIDNum", "")
        waited = _float(event.get("HoldTime", "0"))
        if waited < self.abandon_min_wait or not number or number.lower() == "<unknown>":
            return
        skill = self.follow_up_skill or dialplan_skill(queue)
        try:
            task = await add_follow_up(
                self.pool, number=number, skill=skill, reason=f"abandoned {queue}",
                source="ami:abandon", now=self.clock.now(), policy=self.numbers,
                task_id=f"ab-{safe_id(event.get('Uniqueid', ''))[:60]}",
                attributes={"queue": queue, "waited": f"{waited:g}"})
        except AcdError as err:
            log.info("abandoned call from %s in %s: no follow-up (%s)", number, queue, err)
            return
        if task is not None:
            self.follow_ups += 1
            log.info("abandoned call from %s in %s after %gs: follow-up %s", number, queue,
                     waited, task.id)

    def _member_of(self, channel: str) -> str:
        """The queue member whose interface dialed ``channel`` (``PJSIP/agent2-0000001a``)."""
        interface = channel.rsplit("-", 1)[0]
        return next((m.name for queue in self.board.queues()
                     for m in self.board.members(queue) if m.interface == interface), "")

    async def completed(self, event: Mapping[str, str]) -> None:
        """A member took a call: remember it so both sides may rate it."""
        assert self.ratings is not None
        member, number = event.get("MemberName", ""), event.get("CallerIDNum", "")
        try:
            await self.ratings.record_served(Interaction(
                interaction_id(event.get("Uniqueid", "")), member,
                number if number.lstrip("+").isdigit() else "", event.get("Queue", ""),
                self.clock.now()))
        except AcdError as err:
            log.info("AgentComplete of %s: not rateable (%s)", member, err)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0
