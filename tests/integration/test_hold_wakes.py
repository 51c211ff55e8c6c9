"""A caller on hold (ari/queue.py) wakes only when something is due (core/holding.py): its
position announcements come every ``queue.announce_every`` and never sooner, its wait ends
at ``queue.max_wait``, and in between it makes no Redis round trip, against a real
redis-server (the flow's ARI requests are recorded instead of sent)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any, cast

import pytest
from poolkit import RULES

from acdkit.ari import events as ev
from acdkit.ari import queue
from acdkit.ari.bridges import Bridges
from acdkit.ari.callback_offer import LoggedIn, OverflowOffer
from acdkit.ari.calls import Calls
from acdkit.ari.control import AriControl
from acdkit.ari.session import ChannelGone, Session
from acdkit.config import OutboundSettings, OverflowSettings, QueueSettings, Settings
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskKind
from acdkit.ports import SystemClock
from acdkit.store.connection import RoundTrips, connect
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration
NO_OFFERS = replace(OverflowSettings(), wait_over=0, position_over=0, when_no_agents=False,
                    when_out_of_hours=False, first_after=0.2, repeat_every=0.2)


@dataclass
class Recorded:
    """Stands for ARI: the requests the held caller's flow makes, with their times. A
    playback ends ``plays_for`` seconds after it starts (its ``PlaybackFinished`` goes to
    ``caller``), or never."""

    trips: RoundTrips
    played: list[tuple[float, list[str], int]]
    sent: list[str]
    caller: Session | None = None
    plays_for: float | None = 0.05

    async def play(self, channel_id: str, media: list[str], *, playback_id: str = "pb-1",
                   **_: Any) -> str:
        self.played.append((time.time(), media, self.trips.count))
        if self.caller is not None and self.plays_for is not None:
            asyncio.get_running_loop().call_later(
                self.plays_for, self.caller.feed,
                ev.PlaybackFinished(playback_id=playback_id, target_uri=f"channel:{channel_id}"))
        return playback_id

    async def stop_playback(self, playback_id: str) -> bool:
        self.sent.append(f"stop {playback_id}")
        return True

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> bool:
        self.sent.append(f"remove {channel_id} from {bridge_id}")
        return True

    async def continue_in_dialplan(self, channel_id: str, context: str, *_: Any) -> bool:
        self.sent.append(f"continue {channel_id} in {context}")
        return True


@pytest.fixture
async def counted_pool(redis_url: str) -> AsyncIterator[tuple[Pool, RoundTrips]]:
    trips = RoundTrips()
    made = Pool(await connect(redis_url, round_trips=trips), RULES)
    try:
        yield made, trips
    finally:
        await made.close()


def queueing(pool: Pool, control: Recorded, announce_every: float,
             max_wait: float) -> queue.Queueing:
    """What the holding part of the inbound flow uses (the rest is never reached)."""
    settings, clock, ari = Settings(), SystemClock(), cast(AriControl, control)
    unused: Any = None
    offer = OverflowOffer(ari, pool, clock, unused, NumberPolicy(), settings.center, NO_OFFERS,
                          False, None, unused, unused, LoggedIn(pool))
    return queue.Queueing(ari, pool, clock, NumberPolicy(), Calls(), Bridges(ari, "default"),
                          unused, {}, QueueSettings(announce_every=announce_every,
                                                    max_wait=max_wait),
                          NO_OFFERS, OutboundSettings(), offer, unused, unused)


async def hold(pool: Pool, ctx: queue.Queueing, task_id: str, ahead: int = 0) -> Task:
    now = time.time()
    for i in range(ahead):
        await pool.add_task(Task(id=f"ahead-{i}", kind=TaskKind.CALL, skill="sales",
                                 created_at=now - 10, enqueued_at=now - 10))
    task = Task(id=task_id, kind=TaskKind.CALL, skill="sales", created_at=now,
                enqueued_at=now, channel_id="c1")
    await pool.add_task(task)
    caller = ctx.calls.open(task.id, Session("c1", ctx.control)).customer
    cast(Recorded, ctx.control).caller = caller
    return task


async def test_a_held_caller_makes_no_round_trip_until_its_wait_ends(
        counted_pool: tuple[Pool, RoundTrips]) -> None:
    pool, trips = counted_pool
    control = Recorded(trips, [], [])
    ctx = queueing(pool, control, announce_every=3_600, max_wait=2.0)
    task = await hold(pool, ctx, "t1")
    call = ctx.calls.get(task.id)
    assert call is not None
    waiting = asyncio.create_task(queue._wait_for_agent(ctx, call.customer, task))
    quiet = trips.count
    await asyncio.sleep(1.5)  # a poll would have read the queue each second by now
    assert trips.count == quiet and not waiting.done()
    with pytest.raises(ChannelGone):
        await asyncio.wait_for(waiting, 5)
    assert time.time() - task.enqueued_at >= 2.0
    assert control.sent == ["remove c1 from hold-sales", "continue c1 in acdkit-fallback"]
    expired = await pool.get_task(task.id)
    assert expired is not None and expired.state.value == "expired"
    assert control.played == []  # no announcement was due


async def test_announcements_come_every_announce_every_and_never_sooner(
        counted_pool: tuple[Pool, RoundTrips]) -> None:
    pool, trips = counted_pool
    control = Recorded(trips, [], [])
    ctx = queueing(pool, control, announce_every=0.3, max_wait=1.4)
    task = await hold(pool, ctx, "t1", ahead=1)
    call = ctx.calls.get(task.id)
    assert call is not None
    waiting = asyncio.create_task(queue._wait_for_agent(ctx, call.customer, task))
    await asyncio.sleep(0.1)
    call.customer.feed(ev.ChannelDtmfReceived(channel=ev.Channel(id="c1"), digit="5"))
    with pytest.raises(ChannelGone):
        await asyncio.wait_for(waiting, 5)
    times = [at - task.enqueued_at for at, _, _ in control.played]
    assert len(times) >= 2, control.played  # 0.3, 0.6, 0.9, 1.2 s on a quiet machine
    # Never sooner: the k-th comes at least k periods after the enqueue. (Two plays may be
    # closer than a period: each is played after its look's own read of the queue.)
    assert all(at >= 0.3 * k for k, at in enumerate(times, 1)), times
    assert {tuple(media) for _, media, _ in control.played} == {
        ("sound:queue-thereare", "number:2", "sound:queue-callswaiting")}
    # Between two announcements, one read of the queue: its position (and the agents
    # logged in, read at most once a second for every caller): a few round trips.
    reads = [b - a for (_, _, a), (_, _, b) in pairwise(control.played)]
    assert all(0 < r <= 4 for r in reads), reads


async def test_a_held_caller_leaves_its_sleep_when_an_agent_is_connected(
        counted_pool: tuple[Pool, RoundTrips]) -> None:
    """The conversation reads the caller's keys itself (the survey after it): a flow asleep
    until its next announcement would take them. It leaves once the call is bridged."""
    pool, trips = counted_pool
    ctx = queueing(pool, Recorded(trips, [], []), announce_every=3_600, max_wait=3_600)
    task = await hold(pool, ctx, "t1")
    call = ctx.calls.get(task.id)
    assert call is not None
    waiting = asyncio.create_task(queue._wait_for_agent(ctx, call.customer, task))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    call.taken.set()  # an agent is rung, answers, and the caller joins its bridge
    call.bridge_id = "call-t1"
    await asyncio.wait_for(waiting, 2.0)  # asleep until the next announcement: an hour
    call.customer.feed(ev.ChannelDtmfReceived(channel=ev.Channel(id="c1"), digit="4"))
    assert await call.customer.read_key(0.5) == "4"  # the key is the conversation's


async def test_an_announcement_is_never_queued_behind_one_still_playing(
        counted_pool: tuple[Pool, RoundTrips]) -> None:
    """Asterisk plays a channel's media in turn, and moves the caller to a bridge only after
    it (docs/architecture.md §7): announcements due every 0.2 s while the first one plays
    for ever make one announcement, and the longest wait stops it before the caller
    leaves the holding bridge."""
    pool, trips = counted_pool
    control = Recorded(trips, [], [], plays_for=None)
    ctx = queueing(pool, control, announce_every=0.2, max_wait=1.0)
    task = await hold(pool, ctx, "t1")
    call = ctx.calls.get(task.id)
    assert call is not None
    waiting = asyncio.create_task(queue._wait_for_agent(ctx, call.customer, task))
    with pytest.raises(ChannelGone):
        await asyncio.wait_for(waiting, 5)
    assert [media for _, media, _ in control.played] == [["sound:queue-youarenext"]]
    [stop, *moves] = control.sent
    assert stop.startswith("stop pb-c1-")
    assert moves == ["remove c1 from hold-sales", "continue c1 in acdkit-fallback"]
    assert call.customer.playing == set()
