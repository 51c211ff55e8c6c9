"""/metrics against a real redis-server: the text parses with prometheus-client's own parser,
labels stay bounded, and the figures are those of `acdkit stats` for the same window."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from poolkit import kpi_day, task
from prometheus_client.parser import text_string_to_metric_families

from acdkit.config import Settings
from acdkit.core.kpis import parse_window
from acdkit.core.tasks import TaskKind, TaskState
from acdkit.store.kpis import kpi_settings, read_kpis
from acdkit.store.pool import Pool
from acdkit.store.primary import ROUND_TRIPS, RoundTrips
from acdkit.web import metrics

pytestmark = pytest.mark.integration
LABELS = {"skill", "state", "kind", "threshold", "le", "method", "route"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(pool: Pool, settings: Settings) -> Samples:
    app = web.Application()
    app.router.add_routes(metrics.routes(pool, settings))
    async with TestClient(TestServer(app)) as client:
        return await read(client)


async def read(client: TestClient) -> Samples:  # type: ignore[type-arg]
    reply = await client.get("/metrics")
    assert reply.status == 200 and reply.content_type == "text/plain"
    text = await reply.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("acdkit_"), family.name
        for s in family.samples:
            assert set(s.labels) <= LABELS, s
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


async def test_scrape_agrees_with_stats(pool: Pool) -> None:
    b = time.time() - 100
    await kpi_day(pool, b)
    settings = Settings()
    settings = replace(settings, kpis=replace(settings.kpis, metrics_window="15m"))
    got = await scrape(pool, settings)
    kpis = await read_kpis(pool, parse_window("15m", time.time(), "UTC"),
                           kpi_settings(settings.kpis), settings.kpis.lookback_s, skill="sales")
    sales = (("skill", "sales"),)
    assert got[("acdkit_calls_offered_total", sales)] == kpis.calls.offered == 2
    assert got[("acdkit_calls_abandoned_total", sales)] == kpis.calls.abandoned == 1
    assert got[("acdkit_service_level_ratio", (("skill", "sales"), ("threshold", "20")))] == \
        kpis.calls.service_level == 0.5
    assert got[("acdkit_wait_seconds_count", sales)] == 1
    assert got[("acdkit_wait_seconds_bucket", (("le", "5.0"), ("skill", "sales")))] == 1
    assert got[("acdkit_handle_time_seconds", sales)] == kpis.calls.aht == 35
    assert got[("acdkit_agents", (("state", "ready"),))] == 1
    assert got[("acdkit_calls_waiting", sales)] == 0
    assert got[("acdkit_callbacks_pending", ())] == 0
    assert got[("acdkit_agent_state_seconds_total", (("state", "on_call"),))] == 30


async def test_callbacks_pending_are_the_scheduled_and_queued_callbacks(pool: Pool) -> None:
    now = time.time()
    await pool.add_tasks([
        task("c1", kind=TaskKind.CALLBACK, state=TaskState.SCHEDULED, due_at=now + 600),
        task("c2", "support", kind=TaskKind.CALLBACK), task("t1")])
    got = await scrape(pool, Settings())
    assert got[("acdkit_callbacks_pending", ())] == 2
    assert got[("acdkit_calls_waiting", (("skill", "sales"),))] == 1


async def test_the_process_counters_are_fresh_at_every_scrape(pool: Pool) -> None:
    trips, ari = RoundTrips(), Counter({("POST", "channels/{id}/answer"): 3})
    endpoint = metrics.MetricsEndpoint(pool, Settings(), ari, trips)
    app = web.Application()
    app.router.add_get("/metrics", endpoint.handle)
    async with TestClient(TestServer(app)) as client:
        trips.count = 41
        first = await read(client)
        trips.count, ari[("GET", "bridges")] = 50, 1
        await pool.add_task(task("t1"))
        second = await read(client)  # within MIN_INTERVAL: the center's figures are reused
    answer = (("method", "POST"), ("route", "channels/{id}/answer"))
    assert first[("acdkit_redis_round_trips_total", ())] == 41
    assert first[("acdkit_ari_requests_total", answer)] == 3
    assert ("acdkit_ari_requests_total", (("method", "GET"), ("route", "bridges"))) not in first
    assert second[("acdkit_redis_round_trips_total", ())] == 50
    assert second[("acdkit_ari_requests_total", (("method", "GET"), ("route", "bridges")))] == 1
    assert ("acdkit_calls_waiting", (("skill", "sales"),)) not in second  # not read again


async def test_without_an_ari_client_only_the_round_trips_show(pool: Pool) -> None:
    before = ROUND_TRIPS.count
    got = await scrape(pool, Settings())
    assert got[("acdkit_redis_round_trips_total", ())] >= before
    assert not [name for name, _ in got if name.startswith("acdkit_ari_")]
