"""Page users (supervisors) in Redis: hash ``acdkit:{pool}:user:<name>`` holds ``role`` and
``password`` (a ``core.users`` scrypt hash); set ``acdkit:{pool}:users`` lists the names."""

from __future__ import annotations

from typing import cast

from acdkit.core.errors import InvalidInput, NotFound
from acdkit.core.users import Role, User, check_name
from acdkit.store.connection import guarded
from acdkit.store.pool import Pool


class UserStore:
    def __init__(self, pool: Pool) -> None:
        self.redis = pool.redis
        self.base = pool.keys.base

    def _key(self, name: str) -> str:
        return f"{self.base}user:{check_name(name)}"

    @guarded
    async def save(self, user: User) -> None:
        """Create or replace ``user``."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(user.name), mapping={"role": user.role.value,
                                                 "password": user.password_hash})
        pipe.sadd(f"{self.base}users", user.name)
        await pipe.execute()

    @guarded
    async def get(self, name: str) -> User | None:
        """The user ``name``, or None (also for a name that could not be one)."""
        try:
            key = self._key(name)
        except InvalidInput:
            return None
        raw = cast(dict[str, str], await self.redis.hgetall(key))
        if not raw:
            return None
        return User(name, Role(raw["role"]), raw.get("password", ""))

    @guarded
    async def names(self) -> list[str]:
        return sorted(cast(set[str], await self.redis.smembers(f"{self.base}users")))

    @guarded
    async def delete(self, name: str) -> None:
        """Remove ``name``; ``NotFound`` when there is none."""
        if not await self.redis.delete(self._key(name)):
            raise NotFound(f"no user {name!r} (see `acdkit users list`)")
        await self.redis.srem(f"{self.base}users", name)
