"""The ARI adapter against the lab's real Asterisk (22.10.1 in podman).

Credentials come from ``asterisk/acdkit.toml`` (``[ari]``) when it exists, else from the
``[acdkit]`` user in ``asterisk/etc/ari.conf``. Every test depends on the session's ``lab``
fixture (tests/lab/conftest.py), which brings the lab up: ARI not answering is a failure,
never a skip.

Each test registers its own app name (``acdkit-labtest-<pid>``), never ``acdkit``: connecting
as ``acdkit`` would take the app away from a running ``acdkit serve`` (ApplicationReplaced).
Calls into the app are Local channels: ``Local/100@acdkit-callers`` runs
``Stasis(${ACDKIT_APP},inbound,main)`` on its ``;2`` half, and the inherited
``_ACDKIT_APP`` variable points that at the test app, so both halves are ours.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.lab.conftest import lab_settings

from acdkit.ari import events as ev
from acdkit.ari.client import AriClient
from acdkit.ari.control import AriControl
from acdkit.labkit.sipp import agent_peer

pytestmark = pytest.mark.lab

APP = f"acdkit-labtest-{os.getpid()}"


def lab_credentials() -> tuple[str, str, str]:
    """(url, username, password) of the lab's ARI (asterisk/acdkit.toml)."""
    ari = lab_settings()["ari"]
    return ari["url"], ari["username"], ari["password"]


class Lab:
    """A connected client and control for the test app, with the events it received."""

    def __init__(self, transport: str = "auto", app: str = APP) -> None:
        url, user, password = lab_credentials()
        self.client = AriClient(url, user, password, app, transport=transport)
        self.control = AriControl(self.client)
        self.events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self.seen: list[ev.Event] = []
        self.task: asyncio.Task[None] | None = None

    async def on_event(self, event: ev.Event) -> None:
        self.seen.append(event)
        self.events.put_nowait(event)

    async def start(self) -> Lab:
        self.task = asyncio.create_task(self.client.run(self.on_event))
        try:
            await self.client.wait_connected(5.0)
        except Exception:
            await self.stop()
            raise
        return self

    async def wait_for(self, match: Callable[[ev.Event], bool], timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if match(event):
                    return event

    async def stop(self) -> None:
        await self.client.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5.0)


@pytest.fixture(autouse=True)
def _lab_up(lab: Path) -> Path:
    """Every test here needs the lab: the session fixture brings it up (or fails)."""
    return lab


@pytest.fixture
async def ari_lab() -> AsyncIterator[Lab]:
    running = await Lab().start()
    yield running
    await running.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def test_rest_over_the_websocket_works(ari_lab: Lab) -> None:
    assert ari_lab.client.transport == "websocket"
    connected = ari_lab.seen[0]
    assert isinstance(connected, ev.Connected) and connected.transport == "websocket"
    info = await ari_lab.control.asterisk_info()
    assert info["system"]["version"].startswith("22.")
    assert connected.asterisk_version == info["system"]["version"]
    assert await ari_lab.control.get_global_var("ACDKIT_APP") == "acdkit"


async def test_http_transport_gives_the_same_answers() -> None:
    http = await Lab(transport="http", app=APP + "-http").start()
    try:
        assert http.client.transport == "http"
        info = await http.control.asterisk_info()
        assert info["system"]["version"].startswith("22.")
        assert await http.control.get_channel("acdkit-no-such-channel") is None
    finally:
        await http.stop()


async def test_a_gone_channel_is_a_value_not_an_error(ari_lab: Lab) -> None:
    gone = "acdkit-no-such-channel"
    assert await ari_lab.control.get_channel(gone) is None
    assert await ari_lab.control.answer(gone) is False
    assert await ari_lab.control.hangup(gone) is False
    assert await ari_lab.control.play(gone, "sound:beep") is None
    assert await ari_lab.control.get_var(gone, "X") is None
    assert await ari_lab.control.stop_playback("acdkit-no-such-playback") is False
    assert await ari_lab.control.download_recording("acdkit-no-such-recording") is None


async def test_bridge_create_and_destroy(ari_lab: Lab) -> None:
    bridge_id = unique("labtest-hold")
    bridge = await ari_lab.control.create_bridge(bridge_id, kind="holding", name=bridge_id)
    assert bridge is not None and (bridge.id, bridge.bridge_type) == (bridge_id, "holding")
    # a second create of the same id is told apart (None) and leaves the bridge as it was
    assert await ari_lab.control.create_bridge(bridge_id, kind="mixing") is None
    again = await ari_lab.control.get_bridge(bridge_id)
    assert again is not None and again.bridge_type == "holding"
    assert bridge_id in {b.id for b in await ari_lab.control.list_bridges()}
    assert await ari_lab.control.start_bridge_moh(bridge_id)
    assert await ari_lab.control.stop_bridge_moh(bridge_id)
    assert await ari_lab.control.add_to_bridge(bridge_id, ["acdkit-no-such-channel"]) is False
    assert await ari_lab.control.destroy_bridge(bridge_id) is True
    assert await ari_lab.control.destroy_bridge(bridge_id) is False
    # GET reads Asterisk's snapshot of the bridge, which goes a moment after the bridge (the
    # second DELETE already found none): it is gone within a second.
    for _ in range(50):
        if await ari_lab.control.get_bridge(bridge_id) is None:
            break
        await asyncio.sleep(0.02)
    assert await ari_lab.control.get_bridge(bridge_id) is None


async def test_a_call_through_the_app(ari_lab: Lab) -> None:
    """Originate a Local call whose both halves enter the test app: answer, bridge, DTMF,
    play, record and fetch the audio, hang up."""
    leg = unique("labtest-leg")
    created = await ari_lab.control.originate("Local/100@acdkit-callers", leg,
                                          app_args=["agent-leg", "lab"],
                                          variables={"_ACDKIT_APP": APP})
    assert created is not None and created.id == leg
    inbound = await ari_lab.wait_for(lambda e: isinstance(e, ev.StasisStart)
                                 and e.channel.id == f"{leg};2")
    assert inbound.args == ("inbound", "main")
    assert await ari_lab.control.answer(inbound.channel.id)
    ours = await ari_lab.wait_for(lambda e: isinstance(e, ev.StasisStart) and e.channel.id == leg)
    assert ours.args == ("agent-leg", "lab")

    # DTMF sent out of the ;1 half arrives on the ;2 half as ChannelDtmfReceived.
    await ari_lab.client.request("POST", f"channels/{leg}/dtmf", params={"dtmf": "7"})
    dtmf = await ari_lab.wait_for(lambda e: isinstance(e, ev.ChannelDtmfReceived))
    assert (dtmf.digit, dtmf.channel.id) == ("7", f"{leg};2")

    playback = await ari_lab.control.play(leg, ["sound:beep"])
    assert playback is not None
    done = await ari_lab.wait_for(lambda e: isinstance(e, ev.PlaybackFinished)
                              and e.playback_id == playback)
    assert ev.channel_id(done) == leg

    name = unique("labtest-rec")
    assert await ari_lab.control.record(inbound.channel.id, name, max_duration=1, beep=False)
    finished = await ari_lab.wait_for(
        lambda e: isinstance(e, ev.RecordingFinished | ev.RecordingFailed) and e.name == name)
    assert isinstance(finished, ev.RecordingFinished), finished
    audio = await ari_lab.control.download_recording(name)
    assert audio is not None and audio[:4] == b"RIFF"
    assert await ari_lab.control.delete_recording(name) is True
    assert await ari_lab.control.delete_recording(name) is False

    assert await ari_lab.control.hangup(leg) is True
    await ari_lab.wait_for(lambda e: isinstance(e, ev.ChannelDestroyed) and e.channel.id == leg)
    assert await ari_lab.control.hangup(leg) is False


async def test_originate_an_agent_endpoint(ari_lab: Lab) -> None:
    """Originate to PJSIP/agent7 (a SIPp phone that rings and never answers), then hang up.

    The phone must be there: an INVITE nobody answers cannot be CANCELled, so Asterisk
    retransmits it for 32 s (timer B) to 127.0.0.3:5070, where the next tests' phones get it.
    """
    with agent_peer(noanswer={"agent7"}) as phone:
        leg = unique("labtest-agent7")
        created = await ari_lab.control.originate("PJSIP/agent7", leg, timeout=2,
                                                  app_args=["agent-leg", "7"])
        assert created is not None and created.name.startswith("PJSIP/agent7-")
        assert await ari_lab.control.originate("PJSIP/acdkit-no-such-endpoint",
                                               unique("x")) is None
        await ari_lab.control.hangup(leg)  # True if it still rang, False if it already failed
        await ari_lab.wait_for(lambda e: isinstance(e, ev.ChannelDestroyed | ev.StasisEnd)
                               and e.channel.id == leg, timeout=10)
    assert [i.user for i in phone.invites()] == ["agent7"]


async def test_a_second_connection_takes_the_app_over(ari_lab: Lab) -> None:
    standby = await Lab().start()
    try:
        assert ari_lab.task is not None
        await asyncio.wait_for(ari_lab.task, 5.0)  # the first one stepped down
        assert ari_lab.client.replaced
        assert [type(e).__name__ for e in ari_lab.seen][-2:] == ["ApplicationReplaced",
                                                             "Disconnected"]
        assert standby.client.connected
    finally:
        await standby.stop()


async def test_a_bridge_move_waits_for_the_channels_media_and_holds_the_websocket_up(
        ari_lab: Lab) -> None:
    """Asterisk 22.10.1 adds a channel to a bridge only after the media queued on it, and it
    answers the requests on the events WebSocket one at a time: a request sent meanwhile
    waits as long. A playback stopped first lets both through at once. acdkit relies on
    this (docs/architecture.md §7): a waiting caller's position is stopped before its
    bridge move."""
    ari_lab.client.request_timeout = 20.0
    leg = unique("labtest-leg")
    assert await ari_lab.control.originate("Local/100@acdkit-callers", leg,
                                           variables={"_ACDKIT_APP": APP})
    caller = f"{leg};2"
    await ari_lab.wait_for(lambda e: isinstance(e, ev.StasisStart) and e.channel.id == caller)
    assert await ari_lab.control.answer(caller)
    hold, first, second = unique("labtest-hold"), unique("labtest-mix"), unique("labtest-mix")
    await ari_lab.control.create_bridge(hold, kind="holding", name=hold)
    for mixing in (first, second):
        await ari_lab.control.create_bridge(mixing, kind="mixing", name=mixing)
    await ari_lab.control.add_to_bridge(hold, [caller], role="participant")
    position = ["sound:queue-thereare", "number:12", "sound:queue-callswaiting"]

    async def timed(request: Any) -> float:
        started = asyncio.get_running_loop().time()
        await request
        return asyncio.get_running_loop().time() - started

    async def move_and_ask(to: str) -> tuple[float, float]:
        move = asyncio.ensure_future(timed(ari_lab.control.add_to_bridge(to, [caller])))
        await asyncio.sleep(0.05)  # the move is on its way first
        asked = await timed(ari_lab.client.request("GET", "asterisk/info"))
        return await move, asked

    try:
        playing = await ari_lab.control.play(caller, position)
        await asyncio.sleep(0.3)
        moved, asked = await move_and_ask(first)
        assert moved > 2.0 and asked > 1.5, (moved, asked)  # behind the position
        await ari_lab.wait_for(lambda e: isinstance(e, ev.PlaybackFinished)
                               and e.playback_id == playing)

        playing = await ari_lab.control.play(caller, position)
        await asyncio.sleep(0.3)
        assert playing is not None and await ari_lab.control.stop_playback(playing)
        moved, asked = await move_and_ask(second)
        assert moved < 0.5 and asked < 0.5, (moved, asked)
    finally:
        await ari_lab.control.hangup(leg)
        for bridge in (hold, first, second):
            await ari_lab.control.destroy_bridge(bridge)
