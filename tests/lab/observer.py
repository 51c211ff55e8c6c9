"""Agent first as Asterisk saw it: an ARI observer on every channel, in Asterisk's own order.

SIPp's message log cannot order two peers' messages: SIPp stamps a message it sends after the
write and one it receives when it gets round to reading it, so under load the agent's 200 OK
can carry a later stamp than the customer's INVITE that followed it (seen: 9 ms). Asterisk
emits its events in one ordered stream: an observer app subscribed to everything
(``subscribeAll``, its own app name, so serve's app is untouched) sees the agent leg go
``Up`` and the customer leg get created in the order they really happened.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tests.lab.ariprobe import ARI_URL, ari_credentials

OBSERVER = "acdkit-observer"


@dataclass
class Observed:
    """The channel events seen so far: (type, channel id, state), oldest first."""

    events: list[tuple[str, str, str]] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)

    def add(self, event: dict[str, Any]) -> None:
        channel = event.get("channel") or {}
        if isinstance(channel, dict) and channel.get("id"):
            self.events.append((str(event.get("type")), str(channel["id"]),
                                str(channel.get("state", ""))))

    def customers_dialed_early(self) -> list[str]:
        """Customer legs (``cb-<task>-<n>-c``) created before their attempt's agent leg
        (``cb-<task>-<n>-a``) was ``Up``: each is a break of agent first."""
        up: set[str] = set()
        early: list[str] = []
        for kind, channel, state in list(self.events):
            if state == "Up" and channel.endswith("-a"):
                up.add(channel[:-2])
            if kind == "ChannelCreated" and channel.startswith("cb-") and \
                    channel.endswith("-c") and channel[:-2] not in up:
                early.append(channel)
        return early

    def customer_legs(self) -> list[str]:
        return [c for k, c, _ in list(self.events)
                if k == "ChannelCreated" and c.endswith("-c")]

    def wait_for_customer_legs(self, count: int = 1, timeout: float = 5.0) -> list[str]:
        """The customer legs seen, once there are ``count`` (or ``timeout`` passed): the
        observer's thread may still be reading the events of a leg whose INVITE a SIPp peer
        already logged."""
        deadline = time.monotonic() + timeout
        while len(legs := self.customer_legs()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return legs


async def _watch(observed: Observed, stop: asyncio.Event) -> None:
    user, password = ari_credentials()
    headers = {"Authorization": aiohttp.encode_basic_auth(user, password)}
    async with aiohttp.ClientSession(headers=headers) as http, http.ws_connect(
            f"{ARI_URL}/ari/events?app={OBSERVER}&subscribeAll=true") as ws:
        observed.ready.set()
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(ws.receive(), 0.2)
            except TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            observed.add(json.loads(msg.data))


@contextmanager
def observe_channels() -> Iterator[Observed]:
    """Watch every channel of the lab's Asterisk for the block (in a thread)."""
    observed = Observed()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    worker = threading.Thread(target=loop.run_until_complete, args=(_watch(observed, stop),),
                              daemon=True)
    worker.start()
    assert observed.ready.wait(10), "the ARI observer could not connect"
    try:
        yield observed
    finally:
        loop.call_soon_threadsafe(stop.set)
        worker.join(5)
        loop.close()
