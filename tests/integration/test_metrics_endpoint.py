"""/metrics against a real redis-server: the text parses with prometheus-client's own parser,
labels stay bounded, and the figures are those of `acdkit stats` for the same window."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from poolkit import kpi_day
from prometheus_client.parser import text_string_to_metric_families

from acdkit.config import Settings
from acdkit.core.kpis import parse_window
from acdkit.store.kpis import kpi_settings, read_kpis
from acdkit.store.pool import Pool
from acdkit.web import metrics

pytestmark = pytest.mark.integration
LABELS = {"skill", "state", "kind", "threshold", "le"}


async def scrape(pool: Pool, settings: Settings) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                         float]:
    app = web.Application()
    app.router.add_routes(metrics.routes(pool, settings))
    async with TestClient(TestServer(app)) as client:
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
