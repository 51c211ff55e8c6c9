"""What both doctor modules share (doctor.py checks the parts, doctor_install.py a running
install): one result of ``acdkit doctor``, and the client they reach Redis with."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from acdkit.config import Settings
from acdkit.store.primary import async_client, primary_of


@dataclass(frozen=True)
class Check:
    check: str
    status: str  # OK | WARN | FAIL
    detail: str

    def as_row(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


def doctor_client(settings: Settings) -> aioredis.Redis:
    """A client of the configured Redis (directly or through its sentinels), 3 s timeouts."""
    return async_client(primary_of(settings.redis), timeout=3, max_connections=4)
