"""ARI wire JSON → typed, frozen events and resource snapshots.

``parse_event`` is the only way events enter acdkit from Asterisk. It never lets odd
JSON escape as a ``KeyError``/``TypeError``: a message that cannot be an event raises
``InvalidInput``; a well-formed event of a type acdkit does not handle becomes
``UnknownEvent``. Shapes follow what Asterisk 22.10.1 sends (captured in the lab).

``Connected`` and ``Disconnected`` never come from Asterisk: ``AriClient`` makes them so the
app can reconcile after a reconnect (invariant 6, docs/architecture.md §4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from acdkit.core.errors import InvalidInput

# What Asterisk reports as a DTMF digit; anything else is not a key press.
DTMF_DIGITS = frozenset("0123456789*#ABCD")

# The events acdkit's flows act on. serve asks Asterisk for these only (the client's event
# filter, which adds what the client itself needs: ari/client.py WANTED_ALWAYS): a call's
# other events (ChannelVarset, ChannelDialplan, ChannelStateChange, bridge entries and exits,
# Dial, PlaybackStarted...) are never sent, parsed or routed.
HANDLED = frozenset({
    "StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest",
    "ChannelDtmfReceived", "PlaybackFinished", "RecordingFinished", "RecordingFailed",
})
# Asterisk 22's event types (its REST data models): the labels events are counted by
# (``acdkit_ari_events_total``); any other type is counted as "other".
ASTERISK_EVENTS = HANDLED | frozenset({
    "ApplicationMoveFailed", "ApplicationRegistered", "ApplicationReplaced",
    "ApplicationUnregistered",
    "BridgeAttendedTransfer", "BridgeBlindTransfer", "BridgeCreated", "BridgeDestroyed",
    "BridgeMerged", "BridgeVideoSourceChanged", "ChannelCallerId", "ChannelConnectedLine",
    "ChannelCreated", "ChannelDialplan", "ChannelEnteredBridge", "ChannelHold",
    "ChannelLeftBridge", "ChannelStateChange", "ChannelTalkingFinished",
    "ChannelTalkingStarted", "ChannelToneDetected", "ChannelTransfer", "ChannelUnhold",
    "ChannelUserevent", "ChannelVarset", "ContactStatusChange", "DeviceStateChanged", "Dial",
    "EndpointStateChange", "PeerStatusChange", "PlaybackContinuing", "PlaybackStarted",
    "RecordingStarted", "TextMessageReceived",
})


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """A channel snapshot as ARI sends it (only the fields acdkit reads)."""

    id: str
    name: str = ""
    state: str = ""
    caller_number: str = ""
    caller_name: str = ""
    connected_number: str = ""
    connected_name: str = ""
    context: str = ""
    exten: str = ""
    priority: int = 0
    creationtime: str = ""
    language: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bridge:
    """A bridge snapshot."""

    id: str
    bridge_type: str = ""
    technology: str = ""
    name: str = ""
    channels: tuple[str, ...] = ()


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event; ``timestamp`` is Asterisk's ISO 8601 text (empty if absent)."""

    timestamp: str = ""
    application: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEvent(Event):
    """An event about one channel."""

    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(ChannelEvent):
    args: tuple[str, ...] = ()
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(ChannelEvent):
    cause: int | None = None
    soft: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(ChannelEvent):
    cause: int = 0
    cause_txt: str = ""

    @classmethod
    def synthetic(cls, channel_id: str) -> ChannelDestroyed:
        """For a channel found gone while reconciling after a reconnect (no event came)."""
        return cls(channel=Channel(id=channel_id), cause_txt="gone during ARI reconnect")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelVarset(Event):
    """A variable was set; ``channel`` is None for a global variable."""

    variable: str
    value: str = ""
    channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEnteredBridge(ChannelEvent):
    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeftBridge(ChannelEvent):
    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroyed(Event):
    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackEvent(Event):
    """A playback; ``target_uri`` is ``channel:<id>`` or ``bridge:<id>``."""

    playback_id: str
    target_uri: str = ""
    media_uri: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingEvent(Event):
    """A live recording; ``duration`` (seconds) is only known once it finished."""

    name: str
    target_uri: str = ""
    format: str = ""
    state: str = ""
    duration: int | None = None
    cause: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(RecordingEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFinished(RecordingEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFailed(RecordingEvent):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(Event):
    """Progress of a dial; ``dialstatus`` is empty at the start, then ANSWER, BUSY, …"""

    peer: Channel
    caller: Channel | None = None
    dialstatus: str = ""
    dialstring: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationReplaced(Event):
    """Another WebSocket took our app name over; this connection gets no more events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected(Event):
    """Synthetic: the events WebSocket is up and the request transport is chosen."""

    transport: str
    asterisk_version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnected(Event):
    """Synthetic: the events WebSocket dropped; requests in flight have failed."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(Event):
    """A well-formed event of a type acdkit does not model."""

    type: str
    raw: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- field readers


def _bad(what: str) -> InvalidInput:
    return InvalidInput(f"ARI event: {what}")


def _str(d: Mapping[Any, Any], key: str, *, required: bool = False) -> str:
    value = d.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _bad(f"{key!r} must be a {'non-empty ' if required else ''}string")
    return value


def _int(d: Mapping[Any, Any], key: str) -> int | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(f"{key!r} must be an integer")
    return value


def _obj(d: Mapping[Any, Any], key: str, *, required: bool = True) -> Mapping[Any, Any] | None:
    value = d.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, Mapping):
        raise _bad(f"{key!r} must be an object")
    return value


def _party(d: Mapping[Any, Any], key: str) -> tuple[str, str]:
    party = _obj(d, key, required=False) or {}
    return _str(party, "number"), _str(party, "name")


def parse_channel(d: object) -> Channel:
    """A ``Channel`` from its JSON object; raises ``InvalidInput`` if it is not one."""
    if not isinstance(d, Mapping):
        raise _bad("a channel must be an object")
    caller_number, caller_name = _party(d, "caller")
    connected_number, connected_name = _party(d, "connected")
    plan = _obj(d, "dialplan", required=False) or {}
    return Channel(
        id=_str(d, "id", required=True), name=_str(d, "name"), state=_str(d, "state"),
        caller_number=caller_number, caller_name=caller_name,
        connected_number=connected_number, connected_name=connected_name,
        context=_str(plan, "context"), exten=_str(plan, "exten"),
        priority=_int(plan, "priority") or 0,
        creationtime=_str(d, "creationtime"), language=_str(d, "language"),
    )


def parse_bridge(d: object) -> Bridge:
    """A ``Bridge`` from its JSON object; raises ``InvalidInput`` if it is not one."""
    if not isinstance(d, Mapping):
        raise _bad("a bridge must be an object")
    members = d.get("channels", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise _bad("'channels' must be a list of strings")
    return Bridge(id=_str(d, "id", required=True), bridge_type=_str(d, "bridge_type"),
                  technology=_str(d, "technology"), name=_str(d, "name"),
                  channels=tuple(members))


def _channel(d: Mapping[Any, Any], key: str = "channel") -> Channel:
    return parse_channel(_obj(d, key))


def _maybe_channel(d: Mapping[Any, Any], key: str) -> Channel | None:
    value = _obj(d, key, required=False)
    return None if value is None else parse_channel(value)


def _args(d: Mapping[Any, Any]) -> tuple[str, ...]:
    args = d.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise _bad("'args' must be a list of strings")
    return tuple(args)


def _digit(d: Mapping[Any, Any]) -> str:
    digit = _str(d, "digit", required=True)
    if digit not in DTMF_DIGITS:
        raise _bad(f"{digit!r} is not a DTMF digit")
    return digit


# ---------------------------------------------------------------- per-type builders

_Base = dict[str, Any]
_Builder = Callable[[Mapping[Any, Any], _Base], Event]


def _playback(cls: type[PlaybackEvent]) -> _Builder:
    def build(d: Mapping[Any, Any], base: _Base) -> Event:
        pb = _obj(d, "playback") or {}
        return cls(**base, playback_id=_str(pb, "id", required=True),
                   target_uri=_str(pb, "target_uri"), media_uri=_str(pb, "media_uri"),
                   state=_str(pb, "state"))
    return build


def _recording(cls: type[RecordingEvent]) -> _Builder:
    def build(d: Mapping[Any, Any], base: _Base) -> Event:
        rec = _obj(d, "recording") or {}
        return cls(**base, name=_str(rec, "name", required=True),
                   target_uri=_str(rec, "target_uri"), format=_str(rec, "format"),
                   state=_str(rec, "state"), duration=_int(rec, "duration"),
                   cause=_str(rec, "cause"))
    return build


def _on_channel(cls: type[ChannelEvent]) -> _Builder:
    return lambda d, base: cls(**base, channel=_channel(d))


def _in_bridge(cls: type[ChannelEnteredBridge | ChannelLeftBridge]) -> _Builder:
    return lambda d, base: cls(**base, channel=_channel(d), bridge=parse_bridge(_obj(d, "bridge")))


_BUILDERS: dict[str, _Builder] = {
    "StasisStart": lambda d, base: StasisStart(
        **base, channel=_channel(d), args=_args(d),
        replace_channel=_maybe_channel(d, "replace_channel")),
    "StasisEnd": _on_channel(StasisEnd),
    "ChannelStateChange": _on_channel(ChannelStateChange),
    "ChannelDtmfReceived": lambda d, base: ChannelDtmfReceived(
        **base, channel=_channel(d), digit=_digit(d), duration_ms=_int(d, "duration_ms") or 0),
    "ChannelHangupRequest": lambda d, base: ChannelHangupRequest(
        **base, channel=_channel(d), cause=_int(d, "cause"), soft=d.get("soft") is True),
    "ChannelDestroyed": lambda d, base: ChannelDestroyed(
        **base, channel=_channel(d), cause=_int(d, "cause") or 0, cause_txt=_str(d, "cause_txt")),
    "ChannelVarset": lambda d, base: ChannelVarset(
        **base, variable=_str(d, "variable", required=True), value=_str(d, "value"),
        channel=_maybe_channel(d, "channel")),
    "ChannelEnteredBridge": _in_bridge(ChannelEnteredBridge),
    "ChannelLeftBridge": _in_bridge(ChannelLeftBridge),
    "BridgeDestroyed": lambda d, base: BridgeDestroyed(
        **base, bridge=parse_bridge(_obj(d, "bridge"))),
    "PlaybackStarted": _playback(PlaybackStarted),
    "PlaybackFinished": _playback(PlaybackFinished),
    "RecordingStarted": _recording(RecordingStarted),
    "RecordingFinished": _recording(RecordingFinished),
    "RecordingFailed": _recording(RecordingFailed),
    "Dial": lambda d, base: Dial(
        **base, peer=_channel(d, "peer"), caller=_maybe_channel(d, "caller"),
        dialstatus=_str(d, "dialstatus"), dialstring=_str(d, "dialstring")),
    "ApplicationReplaced": lambda d, base: ApplicationReplaced(**base),
}


def parse_event(data: object) -> Event:
    """The typed event for one decoded ARI message.

    Returns ``UnknownEvent`` for a well-formed event of a type not modelled here.
    Raises ``InvalidInput`` (and nothing else) when ``data`` is not an object with a string
    ``type``, or when a modelled event lacks a field acdkit needs or has one of a wrong type.
    """
    if not isinstance(data, Mapping):
        raise _bad("not a JSON object")
    kind = _str(data, "type", required=True)
    base: _Base = {"timestamp": _str(data, "timestamp"), "application": _str(data, "application")}
    builder = _BUILDERS.get(kind)
    if builder is None:
        return UnknownEvent(**base, type=kind, raw=data)
    return builder(data, base)


def channel_id(event: Event) -> str | None:
    """The id of the channel an event is about, for routing it to that channel's flow.

    Playbacks and recordings on a channel name it in ``target_uri`` (``channel:<id>``);
    ``Dial`` is routed by its peer (the channel being dialled).
    """
    if isinstance(event, ChannelEvent):
        return event.channel.id
    if isinstance(event, ChannelVarset):
        return event.channel.id if event.channel else None
    if isinstance(event, PlaybackEvent | RecordingEvent):
        kind, _, target = event.target_uri.partition(":")
        return target if kind == "channel" and target else None
    if isinstance(event, Dial):
        return event.peer.id
    return None
