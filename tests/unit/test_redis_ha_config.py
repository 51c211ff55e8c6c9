"""The Sentinel and durability settings (docs/redis-ha.md): parsing, validation, secrets."""

from __future__ import annotations

import pytest

from acdkit.config import load_settings
from acdkit.core.errors import ConfigError, NotDurable, RedisUnavailable
from acdkit.store.primary import Primary, primary_of


def settings(**env: str):  # type: ignore[no-untyped-def]
    return load_settings(env={f"ACDKIT_REDIS_{k.upper()}": v for k, v in env.items()})


def test_one_box_is_the_default() -> None:
    found = settings()
    primary = primary_of(found.redis)
    assert primary == Primary("redis://127.0.0.1:6379/0")
    assert found.redis.min_replicas_ack == 0 and found.redis.ack_timeout_ms == 500


def test_sentinels_master_and_credentials_come_from_the_environment() -> None:
    found = settings(sentinels=" 10.0.0.1:26379, [::1]:26380,sentinel-c:26381 ",
                     master_name="center", sentinel_username="watcher",
                     sentinel_password="s3cret", url="redis://acdkit:pw@primary/2",
                     min_replicas_ack="1", ack_timeout_ms="250")
    primary = primary_of(found.redis)
    assert primary.sentinels == (("10.0.0.1", 26379), ("::1", 26380), ("sentinel-c", 26381))
    assert (primary.master_name, primary.sentinel_username) == ("center", "watcher")
    assert primary.sentinel_password == "s3cret"
    assert (found.redis.min_replicas_ack, found.redis.ack_timeout_ms) == (1, 250)
    assert "s3cret" not in repr(found) and "s3cret" not in repr(primary)
    assert "pw" not in primary.where and "center" in primary.where


@pytest.mark.parametrize(("key", "value"), [
    ("sentinels", "10.0.0.1"),  # no port
    ("sentinels", "10.0.0.1:0"),
    ("sentinels", "10.0.0.1:65536"),
    ("sentinels", "10.0.0.1:26379,bad host:26379"),
    ("master_name", ""),
    ("master_name", "a b"),
    ("sentinel_username", "user:x"),
    ("min_replicas_ack", "-1"),
    ("min_replicas_ack", "17"),
    ("min_replicas_ack", "1.5"),
    ("ack_timeout_ms", "0"),
    ("ack_timeout_ms", "60001"),
])
def test_a_wrong_value_names_its_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings(**{key: value})
    assert err.value.key == f"redis.{key}"
    assert f"ACDKIT_REDIS_{key.upper()}" in str(err.value)


def test_a_unix_socket_cannot_be_reached_through_sentinels() -> None:
    found = settings(sentinels="127.0.0.1:26379", url="unix:///run/redis.sock")
    with pytest.raises(ConfigError) as err:
        primary_of(found.redis)
    assert err.value.key == "redis.url"


def test_not_durable_is_a_redis_outage_for_every_existing_handler() -> None:
    """The dispatcher's loop, the flows' failure path and the jobs' retries catch
    ``RedisUnavailable``: a write the replicas did not confirm takes the same paths."""
    assert issubclass(NotDurable, RedisUnavailable)
