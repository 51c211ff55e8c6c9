"""ARI event parsing: real shapes from the lab, and a fuzz proving odd JSON only ever raises
``InvalidInput``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acdkit.ari import events as ev
from acdkit.core.errors import InvalidInput

FIXTURES = Path(__file__).resolve().parents[1] / "lab" / "fixtures" / "ari"

# Captured from Asterisk 22.10.1 in the lab (2026-11), trimmed of fields we do not read.
CHANNEL: dict[str, Any] = {
    "id": "probe-c1", "name": "Local/s@acdkit-goodbye-00000000;1", "state": "Up",
    "protocol_id": "", "caller": {"name": "Alice", "number": "+4930123"},
    "connected": {"name": "", "number": ""}, "accountcode": "",
    "dialplan": {"context": "acdkit-goodbye", "exten": "s", "priority": 1,
                 "app_name": "Stasis", "app_data": "acdkitprobe,a,b"},
    "creationtime": "2026-11-25T14:10:28.067+0000", "language": "en"}
BRIDGE: dict[str, Any] = {
    "id": "probe-b1", "technology": "simple_bridge", "bridge_type": "mixing",
    "bridge_class": "stasis", "creator": "Stasis", "name": "", "channels": ["probe-c1"],
    "creationtime": "2026-11-25T14:10:28.569+0000", "video_mode": "talker"}
COMMON = {"timestamp": "2026-11-25T14:10:28.067+0000", "asterisk_id": "02:fc:00:00:00:01",
          "application": "acdkitprobe"}


def wire(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, **COMMON, **fields}


def test_stasis_start_reads_channel_and_args() -> None:
    event = ev.parse_event(wire("StasisStart", args=["inbound", "main"], channel=CHANNEL))
    assert isinstance(event, ev.StasisStart)
    assert event.args == ("inbound", "main")
    assert event.replace_channel is None
    assert event.channel.id == "probe-c1"
    assert (event.channel.caller_number, event.channel.caller_name) == ("+4930123", "Alice")
    assert (event.channel.context, event.channel.exten, event.channel.priority) == \
        ("acdkit-goodbye", "s", 1)
    assert event.application == "acdkitprobe"
    assert ev.channel_id(event) == "probe-c1"


def test_channel_events() -> None:
    destroyed = ev.parse_event(wire("ChannelDestroyed", cause=16, cause_txt="Normal Clearing",
                                    channel=CHANNEL))
    assert isinstance(destroyed, ev.ChannelDestroyed)
    assert (destroyed.cause, destroyed.cause_txt) == (16, "Normal Clearing")
    hangup = ev.parse_event(wire("ChannelHangupRequest", cause=16, soft=True, channel=CHANNEL))
    assert isinstance(hangup, ev.ChannelHangupRequest) and hangup.soft and hangup.cause == 16
    dtmf = ev.parse_event(wire("ChannelDtmfReceived", digit="7", duration_ms=120,
                               channel=CHANNEL))
    assert isinstance(dtmf, ev.ChannelDtmfReceived)
    assert (dtmf.digit, dtmf.duration_ms) == ("7", 120)
    varset = ev.parse_event(wire("ChannelVarset", variable="FOO", value="bar"))
    assert isinstance(varset, ev.ChannelVarset) and varset.channel is None
    assert ev.channel_id(varset) is None


def test_bridge_playback_recording_dial() -> None:
    entered = ev.parse_event(wire("ChannelEnteredBridge", bridge=BRIDGE, channel=CHANNEL))
    assert isinstance(entered, ev.ChannelEnteredBridge)
    assert entered.bridge.channels == ("probe-c1",) and entered.bridge.bridge_type == "mixing"
    finished = ev.parse_event(wire("PlaybackFinished", playback={
        "id": "probe-p1", "media_uri": "sound:beep", "target_uri": "channel:probe-c1",
        "language": "en", "state": "done"}))
    assert isinstance(finished, ev.PlaybackFinished)
    assert (finished.playback_id, finished.state) == ("probe-p1", "done")
    assert ev.channel_id(finished) == "probe-c1"
    failed = ev.parse_event(wire("RecordingFailed", recording={
        "name": "vr-1", "format": "wav", "state": "failed", "cause": "No such file",
        "target_uri": "bridge:b1"}))
    assert isinstance(failed, ev.RecordingFailed) and failed.cause == "No such file"
    assert ev.channel_id(failed) is None and failed.duration is None
    dial = ev.parse_event(wire("Dial", dialstatus="ANSWER", dialstring="agent7", peer=CHANNEL))
    assert isinstance(dial, ev.Dial) and dial.dialstatus == "ANSWER" and dial.caller is None


def test_unknown_and_synthetic() -> None:
    event = ev.parse_event(wire("PlaybackContinuing", playback={"id": "x"}))
    assert isinstance(event, ev.UnknownEvent) and event.type == "PlaybackContinuing"
    assert event.raw["playback"] == {"id": "x"}
    assert isinstance(ev.parse_event(wire("ApplicationReplaced")), ev.ApplicationReplaced)
    gone = ev.ChannelDestroyed.synthetic("c-9")
    assert ev.channel_id(gone) == "c-9"


@pytest.mark.parametrize("data", [
    None, [], "StasisStart", {"type": 3}, {"type": ""}, {"no": "type"},
    wire("StasisStart"),  # no channel
    wire("StasisStart", channel={"name": "no id"}),
    wire("StasisStart", channel=CHANNEL, args="inbound,main"),
    wire("ChannelDtmfReceived", digit="x", channel=CHANNEL),
    wire("ChannelDtmfReceived", digit="7", duration_ms=True, channel=CHANNEL),
    wire("ChannelDestroyed", cause="16", channel=CHANNEL),
    wire("PlaybackFinished", playback=[]),
    wire("ChannelEnteredBridge", bridge={**BRIDGE, "channels": [1]}, channel=CHANNEL),
])
def test_malformed_raises_invalid_input(data: object) -> None:
    with pytest.raises(InvalidInput):
        ev.parse_event(data)


# --------------------------------------------------------------------------- fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


def _maybe(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(inner, json_values)


# Near-valid shapes reach the per-field checks, not only the "type" check.
channelish = _maybe(st.fixed_dictionaries({}, optional={
    "id": _maybe(st.text(max_size=6)), "name": json_values, "state": json_values,
    "caller": _maybe(st.fixed_dictionaries({}, optional={"number": json_values})),
    "dialplan": _maybe(st.fixed_dictionaries({}, optional={"priority": json_values})),
}))
eventish = st.fixed_dictionaries(
    {"type": _maybe(st.sampled_from([*ev._BUILDERS, "Whatever"]))},
    optional={"channel": channelish, "peer": channelish, "replace_channel": channelish,
              "args": _maybe(st.lists(st.text(max_size=4), max_size=3)),
              "bridge": _maybe(st.fixed_dictionaries({"id": json_values},
                                                     optional={"channels": json_values})),
              "playback": _maybe(st.fixed_dictionaries({"id": json_values})),
              "recording": _maybe(st.fixed_dictionaries({"name": json_values},
                                                        optional={"duration": json_values})),
              "digit": _maybe(st.sampled_from(sorted(ev.DTMF_DIGITS))),
              "duration_ms": json_values, "cause": json_values, "cause_txt": json_values,
              "variable": json_values, "timestamp": json_values, "soft": json_values})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, eventish))
def test_parse_event_returns_an_event_or_raises_invalid_input(data: object) -> None:
    try:
        event = ev.parse_event(data)
    except InvalidInput:
        return
    assert isinstance(event, ev.Event)
    ev.channel_id(event)  # total on whatever parsed


def _captured() -> list[tuple[str, Any]]:
    """(file name, message) for every captured message: <Type>.json and call-session.jsonl."""
    if not FIXTURES.is_dir():
        return []
    found = [(p.name, json.loads(p.read_text())) for p in sorted(FIXTURES.glob("*.json"))]
    for p in sorted(FIXTURES.glob("*.jsonl")):
        found += [(p.name, json.loads(line)) for line in p.read_text().splitlines() if line]
    return found


def test_captured_lab_fixtures_parse() -> None:
    captured = [(name, m) for name, m in _captured() if m.get("type") != "RESTResponse"]
    assert captured, f"no captured ARI events in {FIXTURES}"
    for name, message in captured:
        event = ev.parse_event(message)
        modelled = getattr(ev, message["type"], None)
        if name == f"{message['type']}.json" and modelled is not None:
            assert type(event) is modelled, name
        else:
            assert isinstance(event, ev.Event), name
