"""A small ARI client for SIPp lab tests: watch one app's events, make a few REST calls.

Reads the lab's ARI user from asterisk/etc/ari.conf, so it needs nothing but the lab
Asterisk. Stand-in until tests/lab/conftest.py offers an ARI fixture; then drop it.
Connecting as an app takes the app over from any other WebSocket (``ApplicationReplaced``
there): only use it while no ``acdkit serve`` runs.
"""

from __future__ import annotations

import asyncio
import configparser
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

ARI_URL = "http://127.0.0.1:8088"
ARI_CONF = Path(__file__).resolve().parents[2] / "asterisk" / "etc" / "ari.conf"
APP = "acdkit"

Event = dict[str, Any]


def ari_credentials(path: Path = ARI_CONF) -> tuple[str, str]:
    """(user, password) of the first ARI user in ari.conf."""
    conf = configparser.ConfigParser(inline_comment_prefixes=(";",), strict=False)
    conf.read(path)
    for section in conf.sections():
        if conf[section].get("type") == "user":
            return section, conf[section]["password"]
    raise LookupError(f"no ARI user in {path}")


class AriProbe:
    """Events of one Stasis app, in order, and REST calls on the same session."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = http
        self.ws = ws
        self.seen: list[Event] = []

    async def next_event(self, *types: str, timeout: float = 10.0,
                         channel: str | None = None) -> Event:
        """The next event of one of ``types`` (for ``channel`` if given); TimeoutError if none."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"ARI WebSocket: {msg.type} {msg.data!r}")
                event: Event = json.loads(msg.data)
                self.seen.append(event)
                if event.get("type") in types and (
                        channel is None or event.get("channel", {}).get("id") == channel):
                    return event

    async def request(self, method: str, path: str, **params: str | int) -> Any:
        """An ARI REST call; the JSON answer (None when empty). AssertionError on >= 300."""
        body = await self.raw(method, path, **params)
        return json.loads(body) if body else None

    async def raw(self, method: str, path: str, **params: str | int) -> bytes:
        """An ARI REST call's body as bytes (a stored recording). AssertionError on >= 300."""
        async with self.http.request(method, f"{ARI_URL}/ari/{path}",
                                     params={k: str(v) for k, v in params.items()}) as resp:
            body = await resp.read()
            assert resp.status < 300, f"{method} {path} -> {resp.status} {body[:300]!r}"
            return body


@asynccontextmanager
async def ari_probe(app: str = APP) -> AsyncIterator[AriProbe]:
    """Connect as ``app`` for the block; AssertionError naming the problem if ARI is down."""
    user, password = ari_credentials()
    # aiohttp 3.14 deprecates BasicAuth (a DeprecationWarning, an error under our pytest settings)
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password)}
    async with aiohttp.ClientSession(headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=10)) as http:
        url = f"{ARI_URL}/ari/events?app={app}&subscribeAll=false"
        try:
            ws = await http.ws_connect(url)
        except (aiohttp.ClientError, OSError) as exc:
            raise AssertionError(f"the lab's ARI at {ARI_URL} does not answer ({exc}): "
                                 "start the lab with `make lab-up`") from exc
        async with ws:
            yield AriProbe(http, ws)
