"""Fixtures for tests against a real redis-server: a pool, a clock that moves when told."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from poolkit import RULES, StepClock

from acdkit.store.connection import connect
from acdkit.store.pool import Pool


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
async def pool(redis_url: str, clock: StepClock) -> AsyncIterator[Pool]:
    made = Pool(await connect(redis_url), RULES, clock=clock)
    try:
        yield made
    finally:
        await made.close()
