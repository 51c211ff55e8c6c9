"""The PIN check of an agent id on a real Redis: wrong PINs lock the id across calls, attempts
made at the same time cannot slip past the limit, the lock ends with its lifetime, and the
hash check runs off the event loop."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acdkit.core.agents import Agent, hash_pin
from acdkit.core.errors import InvalidInput
from acdkit.core.pins import PinOutcome, PinPolicy, attempt_allowed, outcome
from acdkit.store.pins import verify_customer_pin, verify_pin
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration

PIN = "4821"


async def _agent(pool: Pool, agent_id: str = "a1") -> None:
    await pool.save_agent(Agent(id=agent_id, skills={"sales": 5},
                                pin_hash=hash_pin(PIN, b"salt-of-" + agent_id.encode())))


async def test_five_wrong_pins_lock_the_agent_even_with_the_right_one(pool: Pool) -> None:
    await _agent(pool)
    policy = PinPolicy(max_failures=5, lockout=1.0)
    assert await verify_pin(pool, "a1", PIN, policy) is PinOutcome.OK
    got = [await verify_pin(pool, "a1", "0000", policy) for _ in range(5)]
    assert got == [PinOutcome.WRONG] * 4 + [PinOutcome.LOCKED]
    assert await verify_pin(pool, "a1", PIN, policy) is PinOutcome.LOCKED
    await asyncio.sleep(1.2)  # the lock lives ``lockout`` seconds after the last attempt
    assert await verify_pin(pool, "a1", PIN, policy) is PinOutcome.OK
    assert await verify_pin(pool, "a1", "0000", policy) is PinOutcome.WRONG  # counter cleared


async def test_attempts_at_the_same_time_cannot_pass_the_limit(pool: Pool) -> None:
    await _agent(pool)
    got = await asyncio.gather(*[verify_pin(pool, "a1", f"{n:04d}") for n in range(40)])
    assert got.count(PinOutcome.WRONG) <= 4
    assert got.count(PinOutcome.OK) == 0


async def test_unknown_agents_and_bad_ids(pool: Pool) -> None:
    assert await verify_pin(pool, "ghost", PIN) is PinOutcome.WRONG
    with pytest.raises(InvalidInput):
        await verify_pin(pool, "a b\r\n", PIN)


async def test_the_hash_check_does_not_stop_the_loop(pool: Pool) -> None:
    # A hash of 400,000 rounds: about 0.15 s of CPU that, on the loop, would stall it.
    digest = hashlib.pbkdf2_hmac("sha256", PIN.encode(), b"salt", 400_000)
    await pool.save_agent(Agent(id="a1", skills={"sales": 5},
                                pin_hash=f"pbkdf2$400000${b'salt'.hex()}${digest.hex()}"))
    lags: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            lags.append(loop.time() - before - 0.005)

    ticking = asyncio.create_task(ticker())
    try:
        for _ in range(4):
            await verify_pin(pool, "a1", PIN)
    finally:
        ticking.cancel()
    assert max(lags) < 0.08, f"the loop stalled {max(lags) * 1000:.0f} ms"


@settings(max_examples=200)
@given(attempts=st.integers(1, 50), limit=st.integers(1, 20), matched=st.booleans())
def test_the_decision(attempts: int, limit: int, matched: bool) -> None:
    policy = PinPolicy(max_failures=limit)
    if not attempt_allowed(attempts, policy):
        assert attempts > limit
        return
    got = outcome(matched, attempts, policy)
    assert (got is PinOutcome.OK) == matched
    assert (got is PinOutcome.LOCKED) == (not matched and attempts == limit)


async def test_a_callers_pin_locks_its_number_across_calls(pool: Pool) -> None:
    """The PIN a caller sets for its number (``acdkit ratings pin``), asked by the ratings
    line and the self-service menu: wrong tries from every call count together, per number."""
    pin_hash = hash_pin(PIN, b"salt-of-number")
    policy = PinPolicy(max_failures=3, lockout=300.0)
    number, other = "+12125550123", "+12125550124"
    got = [await verify_customer_pin(pool, number, "0000", pin_hash, policy) for _ in range(3)]
    assert got == [PinOutcome.WRONG] * 2 + [PinOutcome.LOCKED]
    assert await verify_customer_pin(pool, number, PIN, pin_hash, policy) is PinOutcome.LOCKED
    assert await verify_customer_pin(pool, other, PIN, pin_hash, policy) is PinOutcome.OK
    assert await verify_customer_pin(pool, other, "", "", policy) is PinOutcome.WRONG  # no PIN
