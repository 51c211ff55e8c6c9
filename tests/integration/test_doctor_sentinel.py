"""``acdkit doctor`` on a real Sentinel group: each sentinel, their agreement, the quorum and
the replicas that ``redis.min_replicas_ack`` counts on (doctor_sentinel.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sentinels import SentinelGroup
from test_redis_ha import settings_for

from acdkit.checks import Check
from acdkit.doctor_sentinel import check_sentinels
from acdkit.exposure import endpoints, judge

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    made = SentinelGroup(Path(tmp_path_factory.mktemp("sentinels")))
    try:
        made.start()
        yield made
    finally:
        made.close()


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.check: c for c in checks}


async def test_a_healthy_group_with_acknowledgements_is_ok(group: SentinelGroup) -> None:
    checks = by_name(await check_sentinels(settings_for(group, min_replicas_ack=1)))
    for port in group.sentinels:
        row = checks[f"sentinel 127.0.0.1:{port}"]
        assert row.status == "OK", row
        assert f"primary at 127.0.0.1:{group.primary()}" in row.detail
        assert "2 replica(s) online" in row.detail and "quorum OK" in row.detail
    assert checks["sentinel group 'acdkit'"].status == "OK"


async def test_without_acknowledgements_a_failover_may_lose_writes(
        group: SentinelGroup) -> None:
    row = by_name(await check_sentinels(settings_for(group)))["sentinel group 'acdkit'"]
    assert row.status == "WARN" and "min_replicas_ack is 0" in row.detail


async def test_more_acknowledgements_than_replicas_fail(group: SentinelGroup) -> None:
    row = by_name(await check_sentinels(settings_for(group, min_replicas_ack=3)))[
        "sentinel group 'acdkit'"]
    assert row.status == "FAIL" and "needs 3" in row.detail


async def test_a_wrong_master_name_fails_on_every_sentinel(group: SentinelGroup) -> None:
    settings = settings_for(group, min_replicas_ack=1)
    settings = replace(settings, redis=replace(settings.redis, master_name="nobody"))
    checks = await check_sentinels(settings)
    assert [c.status for c in checks] == ["FAIL"] * 4
    assert "does not know the primary 'nobody'" in checks[0].detail


async def test_a_silent_sentinel_is_named_and_the_others_still_decide(
        group: SentinelGroup) -> None:
    silent = group.sentinels[-1]
    group.procs[silent].send_signal(signal.SIGSTOP)
    try:
        checks = by_name(await check_sentinels(settings_for(group, min_replicas_ack=1)))
    finally:
        group.procs[silent].send_signal(signal.SIGCONT)
    row = checks[f"sentinel 127.0.0.1:{silent}"]
    assert row.status == "FAIL" and row.detail.startswith("no answer: ") and row.detail != \
        "no answer: "
    group_row = checks["sentinel group 'acdkit'"]
    assert group_row.status == "OK" and "1 sentinel(s) silent" in group_row.detail


def test_exposure_judges_the_sentinels_not_the_url_host(group: SentinelGroup) -> None:
    settings = settings_for(group)
    redis = [e for e in endpoints(settings) if e.name.startswith("redis")]
    assert [e.name for e in redis] == [f"redis sentinel 127.0.0.1:{p}" for p in group.sentinels]
    assert all(judge(e)[0] == "OK" for e in redis)  # loopback
