"""``stop_loops``: a loop that lost its cancellation is cancelled again until it ended.

redis-py's ``wait_for`` loses a cancellation that arrives with the reply (Python 3.11); the
loop here loses its first one the same way, on purpose: the rare timing cannot be forced."""

from __future__ import annotations

import asyncio

import pytest

from acdkit.stopping import stop_loops


async def loses(cancellations: list[int], turns: list[int]) -> None:
    """Loop for ever, going on after each cancellation while ``cancellations[0]`` is above 0
    (it counts them down)."""
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if cancellations[0] <= 0:
                raise
            cancellations[0] -= 1
        turns.append(1)


async def test_a_loop_that_lost_its_cancellation_is_cancelled_again_until_it_ended() -> None:
    turns: list[int] = []
    once = asyncio.create_task(loses([1], turns))
    await asyncio.sleep(0.02)
    once.cancel()  # what a plain stop does: the loop goes on
    await asyncio.sleep(0.1)
    assert not once.done()
    again = asyncio.create_task(loses([3], []))
    await asyncio.sleep(0.02)
    assert await stop_loops([once, again], timeout=2.0, again=0.05) == set()
    assert once.cancelled() and again.cancelled()


async def test_a_loop_that_never_ends_is_returned_after_the_timeout() -> None:
    losses = [10**6]
    stuck = asyncio.create_task(loses(losses, []))
    ended = asyncio.create_task(loses([0], []))
    await asyncio.sleep(0.02)
    assert await stop_loops([stuck, ended], timeout=0.3, again=0.05) == {stuck}
    assert ended.cancelled()
    losses[0] = 0
    assert await stop_loops([stuck], timeout=1.0) == set()


async def test_a_stop_that_is_cancelled_first_finishes_the_stop() -> None:
    loop = asyncio.create_task(loses([2], []))
    await asyncio.sleep(0.02)
    stop = asyncio.create_task(stop_loops([loop], timeout=2.0, again=0.05))
    await asyncio.sleep(0.01)
    stop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stop
    assert loop.cancelled()


async def test_loops_already_ended_are_not_waited_for() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    assert await stop_loops([done], timeout=5.0) == set()
