"""``Session.play``: a key the caller pressed before a prompt starts keeps that prompt from
starting (a playback started and stopped at once can still play to its end, and the caller's
next step waits behind it: seen in the lab as a 1.9 s gap between the key and the queue)."""

from __future__ import annotations

import asyncio

from acdkit.ari import events as ev
from acdkit.ari.ivr import choose_skill
from acdkit.ari.session import Session
from acdkit.core.errors import AriRequestFailed
from acdkit.core.ivr import Menu


class RecordingControl:
    """The two ARI requests a prompt makes, recorded (no Asterisk can order a key before a
    playback's start on demand)."""

    def __init__(self) -> None:
        self.played: list[str] = []
        self.stopped: list[str] = []

    async def play(self, channel_id: str, media: str, *, playback_id: str) -> bool:
        self.played.append(media)
        return True

    async def stop_playback(self, playback_id: str) -> bool:
        self.stopped.append(playback_id)
        return True


def key(digit: str) -> ev.ChannelDtmfReceived:
    return ev.ChannelDtmfReceived(channel=ev.Channel(id="c1"), digit=digit)


async def test_a_key_during_the_greeting_skips_the_menu_prompt() -> None:
    control = RecordingControl()
    session = Session("c1", control)  # type: ignore[arg-type]
    chosen = asyncio.create_task(choose_skill(session, Menu()))
    await asyncio.sleep(0.01)  # the greeting plays
    session.feed(key("2"))
    assert await asyncio.wait_for(chosen, 2) == "support"
    assert control.played == ["sound:acdkit/welcome"]  # the menu prompt never started
    assert len(control.stopped) == 1 and session.digits == []


async def test_a_key_pressed_before_any_prompt_starts_none() -> None:
    control = RecordingControl()
    session = Session("c1", control)  # type: ignore[arg-type]
    session.feed(key("1"))
    assert await session.play(["sound:a", "sound:b"], interruptible=True) == "1"
    assert control.played == [] and session.digits == ["1"]


def finished(playback_id: str) -> ev.PlaybackFinished:
    return ev.PlaybackFinished(playback_id=playback_id, target_uri="channel:c1")


async def test_a_position_plays_until_its_end_and_only_an_unfinished_one_is_stopped() -> None:
    """``start_playing`` (a waiting caller's position): the playback counts as playing until
    its ``PlaybackFinished``; ``stop_playing`` (before the caller is bridged) stops only one
    still playing."""
    control = RecordingControl()
    session = Session("c1", control)  # type: ignore[arg-type]
    assert await session.start_playing(["sound:queue-youarenext"])
    [first] = session.playing
    session.feed(finished(first))
    assert session.playing == set()
    await session.stop_playing()
    assert control.stopped == []  # nothing to cut short
    assert await session.start_playing(["sound:queue-thereare", "number:3"])
    [second] = session.playing
    await session.stop_playing()
    assert control.stopped == [second] and session.playing == set()


class UnstoppableControl(RecordingControl):
    """Asterisk 22.10.1 answers 500 to a stop of media it cannot control (``number:``)."""

    async def stop_playback(self, playback_id: str) -> bool:
        raise AriRequestFailed("DELETE", f"playbacks/{playback_id}", 500,
                               "Could not stop playback")


async def test_a_position_asterisk_cannot_stop_is_left_to_end_by_itself() -> None:
    session = Session("c1", UnstoppableControl())  # type: ignore[arg-type]
    assert await session.start_playing(["number:3"])
    await session.stop_playing()  # no error: the bridge waits the rest of it
    assert session.playing == set()


class GoneControl(RecordingControl):
    """``AriControl.play`` answers None for a channel that is gone."""

    async def play(self, channel_id: str, media: str, *,  # type: ignore[override]
                   playback_id: str) -> None:
        return None


async def test_a_position_for_a_caller_already_gone_is_not_playing() -> None:
    session = Session("c1", GoneControl())  # type: ignore[arg-type]
    assert not await session.start_playing(["sound:queue-youarenext"])
    assert session.playing == set()
