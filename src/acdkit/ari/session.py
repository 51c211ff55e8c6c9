"""Per-channel sessions: the events of one channel, in order, for the flow that owns it.

The app's event loop never waits for a flow: it puts each channel event on that channel's
queue. A flow awaits what it needs (a key press, the end of a playback) with a timeout, and
learns the channel is gone through ``ChannelGone`` raised from any wait.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from acdkit.ari import events as ev
from acdkit.ari.control import AriControl
from acdkit.core.errors import AriRequestFailed

_ids = itertools.count(1)


class ChannelGone(Exception):
    """The channel hung up or left the app; the flow that owned it must clean up and stop."""


@dataclass
class Session:
    """One channel in our Stasis app and the queue of its events."""

    channel_id: str
    control: AriControl
    caller_number: str = ""
    channel_name: str = ""  # e.g. "PJSIP/agent7-0000002a"
    args: tuple[str, ...] = ()
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    gone: bool = False
    digits: list[str] = field(default_factory=list)  # keys pressed and not yet consumed
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)  # for watchers, not readers
    playing: set[str] = field(default_factory=set)  # playbacks started and not finished

    def feed(self, event: Any) -> None:
        if isinstance(event, ev.ChannelDtmfReceived):
            self.digits.append(event.digit)
        if isinstance(event, ev.PlaybackFinished):
            self.playing.discard(event.playback_id)
        if isinstance(event, ev.StasisEnd | ev.ChannelDestroyed | ev.ChannelHangupRequest):
            self.gone = True
            self.hung_up.set()
        self.queue.put_nowait(event)

    async def next_event(self, timeout: float | None) -> Any | None:
        """The next event, or ``None`` after ``timeout``; raises ``ChannelGone``."""
        if self.gone and self.queue.empty():
            raise ChannelGone(self.channel_id)
        try:
            async with asyncio.timeout(timeout):  # not wait_for: docs/architecture.md §7
                event = await self.queue.get()
        except TimeoutError:
            return None
        if isinstance(event, ev.StasisEnd | ev.ChannelDestroyed | ev.ChannelHangupRequest):
            raise ChannelGone(self.channel_id)
        return event

    async def play(self, media: Iterable[str], *, interruptible: bool = False) -> str | None:
        """Play ``media`` in turn and wait for the end; return the key that stopped it, if
        ``interruptible`` and the caller pressed one (the key stays unconsumed).

        A key pressed before an item starts stops it from starting: a playback started and
        stopped at once may still play to its end (its stop raced its start), and Asterisk
        runs the channel's next request, such as joining the holding bridge, only after it."""
        for item in media:
            if interruptible and self.digits:
                return self.digits[0]
            # Playing until its PlaybackFinished, also for a flow cancelled meanwhile (an
            # offer an agent's connect cut short): stop_playing then stops it.
            playback_id = await self._start(item)
            if playback_id is None:
                raise ChannelGone(self.channel_id)
            key = await self._until_finished(playback_id, interruptible)
            self.playing.discard(playback_id)
            if key is not None:
                return key
        return None

    async def start_playing(self, media: Sequence[str]) -> bool:
        """Start playing ``media`` in turn without waiting for the end (a waiting caller's
        position); it is in ``playing`` until its ``PlaybackFinished``. False if the channel
        is gone. Asterisk runs the channel's next request (joining an agent's bridge) only
        after the media queued on it: ``stop_playing`` first."""
        return await self._start(media) is not None

    async def _start(self, media: str | Sequence[str]) -> str | None:
        """Start ``media``, in ``playing`` until its end; its playback id, None if the
        channel is gone."""
        playback_id = f"pb-{self.channel_id}-{next(_ids)}"
        self.playing.add(playback_id)  # before the request: its end may come first
        if not await self.control.play(self.channel_id, media, playback_id=playback_id):
            self.playing.discard(playback_id)
            return None
        return playback_id

    async def stop_playing(self) -> None:
        """Stop what ``start_playing`` or ``play`` started and has not finished."""
        for playback_id in list(self.playing):
            await self._stop(playback_id)
            self.playing.discard(playback_id)

    async def _stop(self, playback_id: str) -> None:
        try:
            await self.control.stop_playback(playback_id)
        except AriRequestFailed as exc:
            # Asterisk 22.10.1 answers 500 "Could not stop playback" for media it cannot
            # control (``digits:``): that playback ends by itself, shortly.
            if exc.status != 500:
                raise

    async def _until_finished(self, playback_id: str, interruptible: bool) -> str | None:
        while True:
            if interruptible and self.digits:
                await self._stop(playback_id)
                return self.digits[0]
            event = await self.next_event(30.0)
            if isinstance(event, ev.PlaybackFinished) and event.playback_id == playback_id:
                return None
            if event is None:  # a playback that never reports its end: move on
                return None

    async def read_key(self, timeout: float) -> str | None:
        """One key press within ``timeout`` seconds (a key pressed earlier counts)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.digits:
            left = deadline - loop.time()
            if left <= 0 or await self.next_event(left) is None:
                return None
        return self.digits.pop(0)

    async def read_digits(self, *, max_digits: int, timeout: float, end: str = "#") -> str:
        """Keys until ``end``, ``max_digits`` keys, or ``timeout`` seconds between keys."""
        entered = ""
        while len(entered) < max_digits:
            key = await self.read_key(timeout)
            if key is None or key == end:
                break
            entered += key
        return entered

    def clear_digits(self) -> None:
        self.digits.clear()


class Sessions:
    """The live sessions of this process, by channel id."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def open(self, session: Session) -> Session:
        self._by_id[session.channel_id] = session
        return session

    def get(self, channel_id: str) -> Session | None:
        return self._by_id.get(channel_id)

    def close(self, channel_id: str) -> None:
        self._by_id.pop(channel_id, None)

    def route(self, channel_id: str, event: Any) -> None:
        session = self._by_id.get(channel_id)
        if session is not None:
            session.feed(event)

    def all(self) -> list[Session]:
        return list(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)
