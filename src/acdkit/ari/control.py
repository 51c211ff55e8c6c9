"""acdkit's actions on Asterisk as typed ARI calls (channels, bridges, playbacks, recordings).

"Gone" is a value, not an error: a caller who hung up mid-flow is normal. Every method that
addresses a channel, bridge, playback or recording returns ``False`` / ``None`` when Asterisk
says it no longer exists; any other failure raises ``AriRequestFailed``. The statuses read
as "gone" (checked on Asterisk 22.10.1):

- channel actions (answer, hangup, play, ring, moh, dial, continue, variables, snoop):
  404, and 409 "not in a Stasis application" (it left our app, e.g. back to the dialplan);
  ``record``: 404 only (its 409 also means "name in use" and "channel is bridged");
- ``add_to_bridge`` / ``remove_from_bridge``: 404 (no bridge), 400 (Asterisk's answer for
  "Channel not found") and 422 (channel not in our app / not in that bridge);
- bridges, playbacks, recordings: 404.

Ids and names that go into a URL path are checked first (``[A-Za-z0-9._-]``, plus the
``;1``/``;2`` suffix of Local channel halves) and media, endpoints, dialplan targets and
variables are checked for separators, so caller-controlled text cannot reshape a request or
a dial string (invariant 5 and the dial-string rule, docs/architecture.md §4). A bad value
raises ``InvalidInput``.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from acdkit.ari.client import AriClient, AriResponse, Params
from acdkit.ari.events import Bridge, Channel, parse_bridge, parse_channel
from acdkit.core.errors import AriRequestFailed, InvalidInput

log = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_CHANNEL_ID = re.compile(r"[A-Za-z0-9._-]{1,128}(;[12])?")
_MEDIA = re.compile(r"(sound|recording|number|digits|characters|tone):[^\s,\x00-\x1f]{1,200}")
# tech/resource[/options]: never & , ^ or whitespace (docs/architecture.md §7).
_ENDPOINT = re.compile(r"[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9+*#._@;-]{1,128}(/[A-Za-z]{1,8})?")
_DIALPLAN = re.compile(r"[A-Za-z0-9_+*#.-]{1,80}")
_VAR_NAME = re.compile(r"_{0,2}[A-Za-z][A-Za-z0-9_]{0,63}(\([A-Za-z0-9_-]{0,32}\))?")
_PLAIN = re.compile(r"[^\x00-\x1f\x7f]{0,256}")  # one line of text, no control characters
_ARG = re.compile(r"[^\x00-\x1f\x7f,]{0,128}")  # one Stasis arg: no comma
_LANG = re.compile(r"[A-Za-z_-]{1,16}")
_FORMAT = re.compile(r"[a-z0-9]{1,12}")

HANGUP_REASONS = frozenset({
    "normal", "busy", "congestion", "no_answer", "timeout", "rejected", "unallocated",
    "normal_unspecified", "number_incomplete", "codec_mismatch", "interworking", "failure",
    "answered_elsewhere"})
BRIDGE_FEATURES = frozenset({"mixing", "holding", "dtmf_events", "proxy_media",
                             "video_sfu", "video_single"})

_CHANNEL_GONE = frozenset({404, 409})
_BRIDGE_MEMBER_GONE = frozenset({400, 404, 422})
_GONE = frozenset({404})
_EXISTS = frozenset({409})
# A bridge whose last channel just left is being torn down: Asterisk answers a DELETE with
# 409 "Bridge not in Stasis application" (seen when a persistent line is retired).
_BRIDGE_GONE = frozenset({404, 409})


def _check(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidInput(f"{what} {value!r} is not acceptable in an ARI request")
    return value


def _optional(pattern: re.Pattern[str], value: str | None, what: str) -> str | None:
    return None if value is None else _check(pattern, value, what)


def _choice(value: str, allowed: Collection[str], what: str) -> str:
    if value not in allowed:
        raise InvalidInput(f"{what} must be one of {sorted(allowed)}, not {value!r}")
    return value


def _cid(channel_id: str) -> str:
    return _check(_CHANNEL_ID, channel_id, "channel id")


def _media(media: str | Sequence[str]) -> list[str]:
    items = [media] if isinstance(media, str) else list(media)
    if not items:
        raise InvalidInput("nothing to play")
    return [_check(_MEDIA, m, "media") for m in items]


def _args(app_args: str | Sequence[str]) -> str:
    items = app_args.split(",") if isinstance(app_args, str) else list(app_args)
    return ",".join(_check(_ARG, a, "Stasis argument") for a in items)


def _variables(variables: Mapping[str, str] | None) -> dict[str, Any] | None:
    if not variables:
        return None
    return {"variables": {_check(_VAR_NAME, k, "variable name"): _check(_PLAIN, v, "value")
                          for k, v in variables.items()}}


class AriControl:
    """Typed ARI actions over one ``AriClient`` (REST over its WebSocket, or HTTP)."""

    def __init__(self, client: AriClient) -> None:
        self.client = client

    async def _call(self, method: str, path: str, gone: Collection[int] = _GONE, *,
                    params: Params | None = None, body: Any = None) -> AriResponse | None:
        """The response, or None when its status is in ``gone``."""
        response = await self.client.request(method, path, params=params, body=body,
                                             ok_statuses=gone)
        return None if response.status in gone else response

    async def _done(self, method: str, path: str, gone: Collection[int] = _GONE, *,
                    params: Params | None = None) -> bool:
        return await self._call(method, path, gone, params=params) is not None

    # ------------------------------------------------------------ channels

    async def answer(self, channel_id: str) -> bool:
        """Answer a channel; False if it is gone."""
        return await self._done("POST", f"channels/{_cid(channel_id)}/answer", _CHANNEL_GONE)

    async def hangup(self, channel_id: str, reason: str = "normal") -> bool:
        """Hang a channel up; False if it was already gone."""
        params = {"reason": _choice(reason, HANGUP_REASONS, "hangup reason")}
        return await self._done("DELETE", f"channels/{_cid(channel_id)}", _CHANNEL_GONE,
                                params=params)

    async def play(self, channel_id: str, media: str | Sequence[str], *,
                   playback_id: str | None = None, lang: str = "en") -> str | None:
        """Start playing ``media`` (one URI or several in turn); the playback id, or None if
        the channel is gone. The end comes as ``PlaybackFinished`` with that id."""
        return await self._play(f"channels/{_cid(channel_id)}", media, playback_id, lang,
                                _CHANNEL_GONE)

    async def _play(self, target: str, media: str | Sequence[str], playback_id: str | None,
                    lang: str, gone: Collection[int]) -> str | None:
        pid = _check(_ID, playback_id or f"pb-{uuid.uuid4().hex}", "playback id")
        params = {"media": _media(media), "lang": _check(_LANG, lang, "language")}
        response = await self._call("POST", f"{target}/play/{pid}", gone, params=params)
        return None if response is None else pid

    async def stop_playback(self, playback_id: str) -> bool:
        """Stop a playback; False if it already ended."""
        return await self._done("DELETE", f"playbacks/{_check(_ID, playback_id, 'playback id')}")

    async def record(self, channel_id: str, name: str, *, format: str = "wav",
                     max_duration: int = 0, max_silence: int = 0, beep: bool = True,
                     terminate_on: str = "#", if_exists: str = "overwrite") -> bool:
        """Start recording a channel to the stored recording ``name`` (0 = no limit);
        False if the channel is gone. Ends with ``RecordingFinished``/``RecordingFailed``."""
        params: Params = {
            "name": _check(_ID, name, "recording name"),
            "format": _check(_FORMAT, format, "format"),
            "maxDurationSeconds": max(0, max_duration),
            "maxSilenceSeconds": max(0, max_silence), "beep": beep,
            "terminateOn": _choice(terminate_on, {"none", "any", "*", "#"}, "terminate_on"),
            "ifExists": _choice(if_exists, {"fail", "overwrite", "append"}, "if_exists")}
        return await self._done("POST", f"channels/{_cid(channel_id)}/record", params=params)

    async def originate(self, endpoint: str, channel_id: str, *,
                        app_args: str | Sequence[str] = (), caller_id: str | None = None,
                        timeout: int = 30, variables: Mapping[str, str] | None = None,
                        ) -> Channel | None:
        """Dial ``endpoint`` as a new channel with our own ``channel_id``; once answered it
        enters our app with ``app_args``. Returns its snapshot, or None when Asterisk cannot
        make a channel for the endpoint (500 "Allocation failed": unknown endpoint, no
        contact). A channel id already in use raises ``AriRequestFailed`` (409): a fixed id
        per attempt is what keeps a retried dial from ringing twice (docs/architecture.md §7)."""
        params: Params = {"endpoint": _check(_ENDPOINT, endpoint, "endpoint"),
                          "app": self.client.app, "appArgs": _args(app_args),
                          "callerId": _optional(_PLAIN, caller_id, "caller id"),
                          "timeout": timeout}
        return await self._new_channel(f"channels/{_cid(channel_id)}", params, variables)

    async def create_channel(self, endpoint: str, channel_id: str, *,
                             app_args: str | Sequence[str] = (),
                             variables: Mapping[str, str] | None = None) -> Channel | None:
        """Create a channel in our app without dialing it (then ``dial``); None as for
        ``originate``."""
        params: Params = {"endpoint": _check(_ENDPOINT, endpoint, "endpoint"),
                          "app": self.client.app, "appArgs": _args(app_args),
                          "channelId": _cid(channel_id)}
        return await self._new_channel("channels/create", params, variables)

    async def _new_channel(self, path: str, params: Params,
                           variables: Mapping[str, str] | None) -> Channel | None:
        response = await self.client.request("POST", path, params=params,
                                             body=_variables(variables), ok_statuses={500})
        if response.status != 500:
            return parse_channel(response.body)
        error = response.body.get("error") if isinstance(response.body, dict) else None
        if error != "Allocation failed":  # Asterisk 22's words for "cannot make that channel"
            raise AriRequestFailed("POST", path, 500, str(error or "server error"))
        log.warning("ARI could not allocate a channel for %s", params["endpoint"])
        return None

    async def dial(self, channel_id: str, *, caller: str | None = None,
                   timeout: int = 30) -> bool:
        """Dial a channel made by ``create_channel``; False if it is gone."""
        params = {"caller": _cid(caller) if caller else None, "timeout": timeout}
        return await self._done("POST", f"channels/{_cid(channel_id)}/dial", _CHANNEL_GONE,
                                params=params)

    async def continue_in_dialplan(self, channel_id: str, context: str | None = None,
                                   extension: str | None = None, priority: int | None = None,
                                   label: str | None = None) -> bool:
        """Send a channel back to the dialplan; False if it is gone."""
        params = {k: _optional(_DIALPLAN, v, k)
                  for k, v in (("context", context), ("extension", extension), ("label", label))}
        return await self._done("POST", f"channels/{_cid(channel_id)}/continue", _CHANNEL_GONE,
                                params={**params, "priority": priority})

    async def get_var(self, channel_id: str, name: str) -> str | None:
        """A channel variable's value; None if the channel is gone (or, as Asterisk answers
        404 for both, the variable does not exist)."""
        params = {"variable": _check(_VAR_NAME, name, "variable name")}
        response = await self._call("GET", f"channels/{_cid(channel_id)}/variable",
                                    _CHANNEL_GONE, params=params)
        return _value(response)

    async def set_var(self, channel_id: str, name: str, value: str) -> bool:
        """Set a channel variable; False if the channel is gone."""
        params = {"variable": _check(_VAR_NAME, name, "variable name"),
                  "value": _check(_PLAIN, value, "value")}
        return await self._done("POST", f"channels/{_cid(channel_id)}/variable", _CHANNEL_GONE,
                                params=params)

    async def ring(self, channel_id: str) -> bool:
        """Indicate ringing to a channel; False if it is gone."""
        return await self._done("POST", f"channels/{_cid(channel_id)}/ring", _CHANNEL_GONE)

    async def stop_ring(self, channel_id: str) -> bool:
        """Stop indicating ringing; False if the channel is gone."""
        return await self._done("DELETE", f"channels/{_cid(channel_id)}/ring", _CHANNEL_GONE)

    async def start_moh(self, channel_id: str, moh_class: str | None = None) -> bool:
        """Music on hold to a channel; False if it is gone."""
        params = {"mohClass": _optional(_ID, moh_class, "music class")}
        return await self._done("POST", f"channels/{_cid(channel_id)}/moh", _CHANNEL_GONE,
                                params=params)

    async def stop_moh(self, channel_id: str) -> bool:
        """Stop a channel's music on hold; False if it is gone."""
        return await self._done("DELETE", f"channels/{_cid(channel_id)}/moh", _CHANNEL_GONE)

    async def snoop(self, channel_id: str, snoop_id: str, *, spy: str = "none",
                    whisper: str = "none", app_args: str | Sequence[str] = ()) -> Channel | None:
        """A snoop channel (id ``snoop_id``) on a channel, in our app; None if it is gone."""
        directions = {"none", "both", "out", "in"}
        params: Params = {"spy": _choice(spy, directions, "spy"),
                          "whisper": _choice(whisper, directions, "whisper"),
                          "app": self.client.app, "appArgs": _args(app_args)}
        response = await self._call(
            "POST", f"channels/{_cid(channel_id)}/snoop/{_cid(snoop_id)}", _CHANNEL_GONE,
            params=params)
        return None if response is None else parse_channel(response.body)

    async def get_channel(self, channel_id: str) -> Channel | None:
        """A channel's snapshot; None if it is gone."""
        response = await self._call("GET", f"channels/{_cid(channel_id)}")
        return None if response is None else parse_channel(response.body)

    async def list_channels(self) -> list[Channel]:
        """Every channel Asterisk has (not only ours)."""
        return [parse_channel(c) for c in _list(await self.client.request("GET", "channels"))]

    # ------------------------------------------------------------ bridges

    async def create_bridge(self, bridge_id: str, *, kind: str = "mixing",
                            name: str | None = None) -> Bridge | None:
        """Create a bridge; ``kind`` is ``mixing`` or ``holding`` (or an ARI feature list
        such as ``mixing,dtmf_events``). None when a bridge with that id exists already
        (Asterisk 22.10.1 answers 409 "Bridge with id ... already exists" and leaves it
        as it was), so "create unless it exists" is one request."""
        for feature in kind.split(","):
            _choice(feature, BRIDGE_FEATURES, "bridge type")
        params = {"type": kind, "name": _optional(_PLAIN, name, "bridge name")}
        path = f"bridges/{_check(_ID, bridge_id, 'bridge id')}"
        response = await self._call("POST", path, _EXISTS, params=params)
        return None if response is None else parse_bridge(response.body)

    async def get_bridge(self, bridge_id: str) -> Bridge | None:
        """A bridge's snapshot; None if it is gone."""
        response = await self._call("GET", f"bridges/{_check(_ID, bridge_id, 'bridge id')}")
        return None if response is None else parse_bridge(response.body)

    async def list_bridges(self) -> list[Bridge]:
        """Every bridge Asterisk has."""
        return [parse_bridge(b) for b in _list(await self.client.request("GET", "bridges"))]

    async def add_to_bridge(self, bridge_id: str, channel_ids: str | Sequence[str], *,
                            role: str | None = None) -> bool:
        """Add channels (a holding bridge's ``role``: ``participant`` or ``announcer``);
        False if the bridge or a channel is gone."""
        ids = [channel_ids] if isinstance(channel_ids, str) else list(channel_ids)
        params = {"channel": [_cid(c) for c in ids],
                  "role": _optional(_ID, role, "bridge role")}
        return await self._done("POST", f"bridges/{_check(_ID, bridge_id, 'bridge id')}"
                                "/addChannel", _BRIDGE_MEMBER_GONE, params=params)

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> bool:
        """Take a channel out of a bridge; False if either is gone (or it was not in it)."""
        return await self._done("POST", f"bridges/{_check(_ID, bridge_id, 'bridge id')}"
                                "/removeChannel", _BRIDGE_MEMBER_GONE,
                                params={"channel": _cid(channel_id)})

    async def destroy_bridge(self, bridge_id: str) -> bool:
        """Destroy a bridge; False if it was already gone (or going)."""
        return await self._done("DELETE", f"bridges/{_check(_ID, bridge_id, 'bridge id')}",
                                _BRIDGE_GONE)

    async def start_bridge_moh(self, bridge_id: str, moh_class: str | None = None) -> bool:
        """Music on hold to the whole bridge; False if it is gone."""
        params = {"mohClass": _optional(_ID, moh_class, "music class")}
        return await self._done("POST", f"bridges/{_check(_ID, bridge_id, 'bridge id')}/moh",
                                params=params)

    async def stop_bridge_moh(self, bridge_id: str) -> bool:
        """Stop the bridge's music on hold; False if it is gone."""
        return await self._done("DELETE", f"bridges/{_check(_ID, bridge_id, 'bridge id')}/moh")

    async def bridge_play(self, bridge_id: str, media: str | Sequence[str], *,
                          playback_id: str | None = None, lang: str = "en") -> str | None:
        """Play to everyone in a bridge; the playback id, or None if the bridge is gone."""
        return await self._play(f"bridges/{_check(_ID, bridge_id, 'bridge id')}", media,
                                playback_id, lang, _GONE)

    # ------------------------------------------------------------ recordings, asterisk

    async def download_recording(self, name: str) -> bytes | None:
        """A stored recording's audio (always over HTTP); None if there is no such one."""
        try:
            return await self.client.download(
                f"recordings/stored/{_check(_ID, name, 'recording name')}/file")
        except AriRequestFailed as exc:
            if exc.status == 404:
                return None
            raise

    async def delete_recording(self, name: str) -> bool:
        """Delete a stored recording; False if there was none."""
        return await self._done("DELETE",
                                f"recordings/stored/{_check(_ID, name, 'recording name')}")

    async def asterisk_info(self) -> dict[str, Any]:
        """``GET asterisk/info``: build, system (``version``), config, status."""
        body = (await self.client.request("GET", "asterisk/info")).body
        return body if isinstance(body, dict) else {}

    async def get_global_var(self, name: str) -> str:
        """A global dialplan variable (empty when unset: Asterisk answers 200 with "")."""
        params = {"variable": _check(_VAR_NAME, name, "variable name")}
        return _value(await self.client.request("GET", "asterisk/variable", params=params)) or ""


def _value(response: AriResponse | None) -> str | None:
    if response is None or not isinstance(response.body, dict):
        return None
    value = response.body.get("value")
    return value if isinstance(value, str) else None


def _list(response: AriResponse) -> list[Any]:
    if not isinstance(response.body, list):
        raise InvalidInput("ARI answered a list request with something else")
    return response.body
