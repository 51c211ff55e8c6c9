"""Redis down: a clear RedisUnavailable, never a redis-py traceback (and never a password)."""

from __future__ import annotations

import socket

import pytest
from poolkit import RULES, task

from acdkit.core.errors import RedisUnavailable
from acdkit.store.connection import client, connect, redact
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration


def dead_port() -> int:
    with socket.socket() as sock:  # bound and closed: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connect_to_a_dead_port_says_redis_is_unavailable() -> None:
    port = dead_port()
    with pytest.raises(RedisUnavailable) as caught:
        await connect(f"redis://:s3cret@127.0.0.1:{port}/0")
    message = str(caught.value)
    assert message.startswith(f"Redis at redis://:***@127.0.0.1:{port}/0 is unavailable (")
    assert f"127.0.0.1:{port}" in message and "redis-server running" in message
    assert "s3cret" not in message
    assert caught.value.exit_code == 69


async def test_a_pool_whose_redis_went_away_raises_redis_unavailable() -> None:
    pool = Pool(client(f"redis://127.0.0.1:{dead_port()}/0"), RULES)
    try:
        with pytest.raises(RedisUnavailable, match=r"Connection refused|connecting"):
            await pool.add_task(task("t1"))
        with pytest.raises(RedisUnavailable):
            await pool.get_agent("a1")
        with pytest.raises(RedisUnavailable):
            await pool.audit.history("t1")
    finally:
        await pool.close()


async def test_connect_answers_with_a_working_client(redis_url: str) -> None:
    redis = await connect(redis_url)
    try:
        assert await redis.set("k", "v") and await redis.get("k") == "v"  # str, not bytes
    finally:
        await redis.aclose()


def test_redact_hides_only_the_password() -> None:
    assert redact("redis://user:pw@host:6380/2") == "redis://user:***@host:6380/2"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"
    assert redact("unix:///run/redis.sock") == "unix:///run/redis.sock"
