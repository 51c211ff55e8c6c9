"""The least an ARI app can do for a queued call, over acdkit's own ARI client: the floor
under serve's CPU per call (``bench_calls.py --targets floor``).

It makes the requests serve makes for a bench call (docs/benchmarks.md), and nothing else:
answer the caller, play the beep, put the caller in a holding bridge, dial a free agent
into the app, and when the agent answers, bridge the two in a new mixing bridge; when either
hangs up, hang up the other and destroy the bridge. Its agents are ``PJSIP/agent1..N`` in
memory, and it stores nothing: no Redis, no audit, no dispatcher, no timers, no recovery.
It uses serve's event loop (uvloop), its ARI client (WebSocket, orjson, the same event
filter) and its settings (``ACDKIT_CONFIG``), so the difference in CPU per call between the
two is what acdkit's durable state and flows cost.

    python tests/bench/floor_app.py --agents 200
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import signal

from acdkit.ari import events as ev
from acdkit.ari.client import AriClient
from acdkit.bootstrap import ari_client
from acdkit.cli.common import run
from acdkit.config import load_settings

log = logging.getLogger("floor")
HOLD = "floor-hold"
COUNTS = "floor app counted"  # then the ARI requests and events it counted, as JSON


class Floor:
    def __init__(self, client: AriClient, agents: int) -> None:
        self.ari = client
        self.free = collections.deque(f"agent{i}" for i in range(1, agents + 1))
        self.waiting: collections.deque[str] = collections.deque()  # callers, first first
        self.peer: dict[str, str] = {}  # channel → the other leg
        self.bridge: dict[str, str] = {}  # channel → its mixing bridge
        self.agent: dict[str, str] = {}  # agent leg → agent
        self.running: set[asyncio.Task[None]] = set()
        self.number: dict[str, str] = {}  # caller → its number (the agent's phone shows it)

    async def on_event(self, event: ev.Event) -> None:
        """Each event in a task of its own, as serve runs each call's flow on its own: the
        client hands over the next event only when this returns."""
        task = asyncio.create_task(self.handle(event))
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.StasisStart):
            if event.args[:1] == ("agent",):
                await self.answered(event.channel.id, event.args[1])
            else:
                self.number[event.channel.id] = event.channel.caller_number
                await self.arrived(event.channel.id)
        elif isinstance(event, ev.PlaybackFinished):
            caller = event.target_uri.removeprefix("channel:")
            await self.ari.request("POST", f"bridges/{HOLD}/addChannel",
                                   params={"channel": caller}, ok_statuses={404, 422})
            self.waiting.append(caller)
            await self.dial()
        elif isinstance(event, (ev.StasisEnd, ev.ChannelDestroyed)):  # an unanswered leg
            await self.ended(event.channel.id)  # ends without a StasisEnd

    async def arrived(self, caller: str) -> None:
        await self.ari.request("POST", f"channels/{caller}/answer", ok_statuses={404})
        await self.ari.request("POST", f"channels/{caller}/play/floor-{caller}",
                               params={"media": "sound:beep"}, ok_statuses={404})

    async def dial(self) -> None:
        while self.waiting and self.free:
            caller, agent = self.waiting.popleft(), self.free.popleft()
            leg = f"floor-{caller}-leg"
            self.agent[leg] = agent
            got = await self.ari.request(
                "POST", f"channels/{leg}",
                params={"endpoint": f"PJSIP/{agent}", "app": self.ari.app,
                        "appArgs": f"agent,{caller}", "timeout": 5,
                        "callerId": self.number.get(caller, "")},
                ok_statuses={500})
            if got.status == 500:
                self.free.append(self.agent.pop(leg))

    async def answered(self, leg: str, caller: str) -> None:
        bridge = f"floor-{caller}-bridge"
        self.peer.update({leg: caller, caller: leg})
        self.bridge.update({leg: bridge, caller: bridge})
        await self.ari.request("POST", f"bridges/{bridge}", params={"type": "mixing"})
        added = await self.ari.request("POST", f"bridges/{bridge}/addChannel",
                                       params={"channel": f"{caller},{leg}"},
                                       ok_statuses={400, 404, 422})
        if added.status >= 400:  # the caller hung up meanwhile
            await self.ended(caller)

    async def ended(self, channel: str) -> None:
        peer, bridge = self.forget(channel)
        if peer is not None:
            self.forget(peer)
            await self.ari.request("DELETE", f"channels/{peer}", ok_statuses={404})
        if bridge is not None:
            await self.ari.request("DELETE", f"bridges/{bridge}", ok_statuses={404})
        if channel in self.waiting:
            self.waiting.remove(channel)
        await self.dial()

    def forget(self, channel: str) -> tuple[str | None, str | None]:
        """Drop what is kept of ``channel`` (its agent is free again); its peer and bridge."""
        agent = self.agent.pop(channel, None)
        if agent is not None:
            self.free.append(agent)
        self.number.pop(channel, None)
        return self.peer.pop(channel, None), self.bridge.pop(channel, None)


async def main(agents: int) -> None:
    client = ari_client(load_settings())
    floor = Floor(client, agents)
    running = asyncio.create_task(client.run(floor.on_event))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await client.wait_connected(15)
    await client.request("POST", f"bridges/{HOLD}", params={"type": "holding"},
                         ok_statuses={409})  # left by a run that was killed
    await stop.wait()
    log.info("%s %s", COUNTS, json.dumps({"requests": sum(client.requests.values()),
                                          "events": sum(client.events.values())}))
    await client.request("DELETE", f"bridges/{HOLD}", ok_statuses={404})
    await client.close()
    await running


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(main(parser.parse_args().agents))
