"""The AMI link against a scripted AMI server on a real socket (docs/architecture.md §7):
after a drop it reconnects and logs in again; an Originate that was in flight is reported
failed and never re-sent after FullyBooted (panoramisk would re-send it), a query in flight
is re-sent and answered; an action that gets no reply times out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from acdkit.ami.link import AmiLink
from acdkit.config import AmiSettings, Secret
from acdkit.core.errors import AmiUnavailable


class FakeAmi:
    """Answers Login and QueueStatus; swallows Originate and, if told, drops the link."""

    def __init__(self) -> None:
        self.received: list[dict[str, str]] = []
        self.logins = 0
        self.drop_on_originate = True
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                block = (await reader.readuntil(b"\r\n\r\n")).decode()
                action = dict(line.split(": ", 1) for line in block.strip().split("\r\n"))
                self.received.append(action)
                await self.answer(action, writer)
        writer.close()

    async def answer(self, action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        name, action_id = action.get("Action", ""), action.get("ActionID", "")
        if name == "Login":
            self.logins += 1
            writer.write(f"Response: Success\r\nActionID: {action_id}\r\n"
                         "Message: Authentication accepted\r\n\r\n"
                         "Event: FullyBooted\r\nStatus: Fully Booted\r\n\r\n".encode())
        elif name == "QueueStatus" and self.logins > 1:  # answered only after the drop
            writer.write(f"Response: Success\r\nActionID: {action_id}\r\n"
                         "Message: done\r\n\r\n".encode())
        elif name == "Originate" and self.drop_on_originate:
            writer.close()
        await writer.drain()


@pytest.fixture
async def ami() -> AsyncIterator[tuple[FakeAmi, int]]:
    fake = FakeAmi()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    try:
        yield fake, int(server.sockets[0].getsockname()[1])
    finally:
        for writer in fake.writers:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_drop_fails_the_originate_and_replays_only_the_query(
        ami: tuple[FakeAmi, int]) -> None:
    fake, port = ami
    link = AmiLink(AmiSettings(port=port, secret=Secret("s")), lambda event: None,
                   action_timeout=5)
    await link.start()
    await asyncio.wait_for(link.connected.wait(), 5)
    query = asyncio.create_task(link.action({"Action": "QueueStatus"}))
    await asyncio.sleep(0.1)
    with pytest.raises(AmiUnavailable, match="in flight"):
        await link.action({"Action": "Originate", "Channel": "PJSIP/1@pstn",
                           "ChannelId": "cb-x-1-c"})
    reply = await asyncio.wait_for(query, 10)  # re-sent after the new FullyBooted
    assert reply.get("Message") == "done"
    assert fake.logins == 2 and link.logins == 2
    names = [a.get("Action") for a in fake.received]
    assert names.count("Originate") == 1, names  # never sent twice
    assert names.count("QueueStatus") == 2, names
    link.close()


async def test_an_action_without_a_reply_times_out(ami: tuple[FakeAmi, int]) -> None:
    fake, port = ami
    fake.drop_on_originate = False
    link = AmiLink(AmiSettings(port=port, secret=Secret("s")), lambda event: None)
    await link.start()
    await asyncio.wait_for(link.connected.wait(), 5)
    with pytest.raises(AmiUnavailable, match="no reply"):
        await link.action({"Action": "Originate", "ChannelId": "cb-x-2-c"}, timeout=0.2)
    link.close()
    with pytest.raises(AmiUnavailable, match="not connected"):
        await link.action({"Action": "Ping"})
