"""The PIN check of an agent id, with a lockout across calls (core/pins.py decides).

Each attempt is counted in Redis *before* the hash is checked (``rate:pin:<agent id>``, a
counter that lives ``lockout`` seconds after the last attempt), so attempts made at the same
time cannot slip past the limit; a right PIN clears the counter. PBKDF2 runs in a thread:
about 0.1 s of CPU that must not stop the event loop. Unknown agents, agents without a PIN
and wrong PINs take the same time and give the same outcome.
"""

from __future__ import annotations

import asyncio
import functools
from typing import cast

from acdkit.core.agents import check_pin, hash_pin
from acdkit.core.errors import InvalidInput
from acdkit.core.pins import PinOutcome, PinPolicy, attempt_allowed, outcome
from acdkit.store.connection import guarded
from acdkit.store.pool import Pool


@functools.cache
def _decoy() -> str:
    """A hash no PIN is checked against in earnest: an unknown agent costs the same time."""
    return hash_pin("0000", b"acdkit-decoy-pin")


@guarded
async def verify_pin(pool: Pool, agent_id: str, pin: str,
                     policy: PinPolicy | None = None) -> PinOutcome:
    """Check ``pin`` for ``agent_id``: OK, WRONG or LOCKED (``core/pins.py``).

    Raises ``InvalidInput`` for an id that cannot name an agent, ``RedisUnavailable``."""
    policy = policy or PinPolicy()
    key = pool.keys.rate("pin", agent_id)
    attempts = await _count(pool, key, policy)
    if not attempt_allowed(attempts, policy):
        return PinOutcome.LOCKED
    try:
        agent = await pool.get_agent(agent_id)
    except InvalidInput:  # a record that cannot be read signs nobody in
        agent = None
    pin_hash = agent.pin_hash if agent is not None else ""
    return await _check(pool, key, attempts, pin, pin_hash, policy)


@guarded
async def verify_customer_pin(pool: Pool, number: str, pin: str, pin_hash: str,
                              policy: PinPolicy | None = None) -> PinOutcome:
    """Check the PIN a caller keyed for its number (``acdkit ratings pin``) against
    ``pin_hash``, with the same counting and lockout per number as an agent's."""
    policy = policy or PinPolicy()
    key = pool.keys.rate("cpin", number)
    attempts = await _count(pool, key, policy)
    if not attempt_allowed(attempts, policy):
        return PinOutcome.LOCKED
    return await _check(pool, key, attempts, pin, pin_hash, policy)


async def _count(pool: Pool, key: str, policy: PinPolicy) -> int:
    """Count one attempt under ``key``, before any check: the attempts so far, this one in."""
    async with pool.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, max(1, int(policy.lockout)))
        return int(cast(list[int], await pipe.execute())[0])


async def _check(pool: Pool, key: str, attempts: int, pin: str, pin_hash: str,
                 policy: PinPolicy) -> PinOutcome:
    """The hash check, off the event loop (an empty hash never matches); a right PIN
    clears the count."""
    matched = await asyncio.to_thread(check_pin, pin, pin_hash or _decoy())
    result = outcome(matched and bool(pin_hash), attempts, policy)
    if result is PinOutcome.OK:
        await pool.redis.delete(key)
    return result
