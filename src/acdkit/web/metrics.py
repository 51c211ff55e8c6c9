"""``GET /metrics``: the center in Prometheus text format (docs/kpis.md, "Metrics").

Mounted on the HTTP listener ``serve`` already runs (``requests.media_listen``). At each
scrape one collector reads the current figures from Redis (gauges: agents by state, calls
waiting, the longest wait, callbacks pending) and the KPIs of ``[kpis] metrics_window``
(``today`` by default: counters since local midnight, which Prometheus sees as a counter
reset at midnight) from the same code as ``acdkit stats``, so both give the same numbers.
Labels come from bounded sets only: skill, state, kind, threshold; never a number or an id.
A scrape within ``MIN_INTERVAL`` of the previous one is answered from it.

The counters of this process come first, read fresh at every scrape before the figures
above are computed (so a scrape's own Redis reads show on the next one): the Redis round
trips of its clients (``acdkit_redis_round_trips_total``: one per command, pipeline or
transaction, store/primary.py) and, in ``serve``, the ARI requests it sent
(``acdkit_ari_requests_total{method,route}``, the route with its ids templated) and the ARI
events it received (``acdkit_ari_events_total{type}``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from acdkit.config import Settings
from acdkit.core.agents import AgentState
from acdkit.core.errors import AcdError
from acdkit.core.kpis import Kpis, KpiSettings, parse_window
from acdkit.core.tasks import TaskKind
from acdkit.store.kpis import Live, kpi_settings, kpis_of, read_journal
from acdkit.store.pool import Pool
from acdkit.store.primary import ROUND_TRIPS, RoundTrips

log = logging.getLogger(__name__)

MIN_INTERVAL = 2.0
WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@dataclass(frozen=True)
class Snapshot:
    center: Kpis
    skills: dict[str, Kpis]
    live: Live
    callbacks_pending: int
    threshold: str


async def _callbacks_pending(pool: Pool) -> int:
    """Callbacks waiting for their time or for an agent."""
    return sum(n for (_, kind, _), n in (await pool.waiting_by_kind()).items()
               if kind == TaskKind.CALLBACK)


async def snapshot(pool: Pool, settings: Settings, now: float) -> Snapshot:
    """Read the live figures and the window's KPIs, per skill and for the center."""
    window = parse_window(settings.kpis.metrics_window, now, settings.center.timezone)
    formulas: KpiSettings = kpi_settings(settings.kpis)
    journal, live = await read_journal(pool, window, settings.kpis.lookback_s)
    skills = sorted({s for a in live.agents for s in a.skills} | set(live.waiting)
                    | {r.skill for r in journal.tasks.values() if r.skill})
    return Snapshot(kpis_of(journal, live, formulas),
                    {s: kpis_of(journal, live, formulas, skill=s) for s in skills}, live,
                    await _callbacks_pending(pool), f"{formulas.threshold_s:g}")


class CenterCollector(Collector):
    """Prometheus families from one ``Snapshot``."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        yield from self._calls()
        yield from self._live()
        yield from self._center()

    def _calls(self) -> Iterator[Metric]:
        s = self.snap
        counters = {name: CounterMetricFamily(f"acdkit_calls_{name}", doc, labels=["skill"])
                    for name, doc in (("offered", "Calls that entered the queue"),
                                      ("answered", "Calls an agent answered"),
                                      ("abandoned", "Calls abandoned in line"),
                                      ("short_abandoned", "Abandoned before short_abandon_s"),
                                      ("timed_out", "Calls past queue.max_wait"))}
        overflow = CounterMetricFamily("acdkit_calls_overflowed", "Calls that left the queue "
                                       "for a callback or a voice request",
                                       labels=["skill", "kind"])
        level = GaugeMetricFamily("acdkit_service_level_ratio", "Service level ("
                                  + s.center.calls.service_level_formula + ")",
                                  labels=["skill", "threshold"])
        abandon = GaugeMetricFamily("acdkit_abandon_ratio", "abandoned / offered",
                                    labels=["skill"])
        handle = GaugeMetricFamily("acdkit_handle_time_seconds", "AHT: mean talk + wrap-up",
                                   labels=["skill"])
        wait = HistogramMetricFamily("acdkit_wait_seconds", "Wait of answered calls",
                                     labels=["skill"])
        for skill, k in s.skills.items():
            c = k.calls
            for name, family in counters.items():
                family.add_metric([skill], getattr(c, name))
            overflow.add_metric([skill, "callback"], c.overflow_callback)
            overflow.add_metric([skill, "voice_request"], c.overflow_voice_request)
            if c.service_level is not None:
                level.add_metric([skill, s.threshold], c.service_level)
            if c.abandon_rate is not None:
                abandon.add_metric([skill], c.abandon_rate)
            if c.aht is not None:
                handle.add_metric([skill], c.aht)
            wait.add_metric([skill], _buckets(c.waits), sum(c.waits))
        yield from (*counters.values(), overflow, level, abandon, handle, wait)

    def _live(self) -> Iterator[Metric]:
        s = self.snap
        agents = GaugeMetricFamily("acdkit_agents", "Agents by state", labels=["state"])
        for state in AgentState:
            agents.add_metric([state.value], sum(1 for a in s.live.agents if a.state is state))
        waiting = GaugeMetricFamily("acdkit_calls_waiting", "Tasks queued now",
                                    labels=["skill"])
        longest = GaugeMetricFamily("acdkit_longest_wait_seconds",
                                    "Wait of the oldest queued task", labels=["skill"])
        for skill in s.skills:
            waiting.add_metric([skill], s.live.waiting.get(skill, 0))
            oldest = s.live.oldest.get(skill)
            longest.add_metric([skill], 0.0 if oldest is None else
                               max(0.0, s.center.window.end - oldest))
        yield from (agents, waiting, longest,
                    GaugeMetricFamily("acdkit_callbacks_pending", "Callbacks not yet served",
                                      value=s.callbacks_pending),
                    GaugeMetricFamily("acdkit_voice_requests_open",
                                      "Voice requests not yet answered",
                                      value=s.center.requests.open))

    def _center(self) -> Iterator[Metric]:
        k = self.snap.center
        callbacks = CounterMetricFamily("acdkit_callbacks", "Callbacks by outcome",
                                        labels=["state"])
        for state in ("booked", "completed", "failed", "expired"):
            callbacks.add_metric([state], getattr(k.callbacks, state))
        spent = CounterMetricFamily("acdkit_agent_state_seconds", "Agent time by state",
                                    labels=["state"])
        for state, seconds in sorted(k.agents.seconds.items()):
            spent.add_metric([state], seconds)
        yield from (callbacks, spent,
                    CounterMetricFamily("acdkit_outbound_dials", "Customer dial attempts",
                                        value=k.outbound.dialed),
                    CounterMetricFamily("acdkit_outbound_reached", "Dials answered",
                                        value=k.outbound.reached))
        if k.agents.occupancy is not None:
            yield GaugeMetricFamily("acdkit_occupancy_ratio", k.formulas["occupancy"],
                                    value=k.agents.occupancy)


class ProcessCollector(Collector):
    """This process's counters: Redis round trips and, when given, ARI requests and events."""

    def __init__(self, round_trips: RoundTrips,
                 ari_requests: Mapping[tuple[str, str], int] | None,
                 ari_events: Mapping[str, int] | None = None) -> None:
        self.round_trips = round_trips.count
        self.ari_requests = None if ari_requests is None else dict(ari_requests)
        self.ari_events = None if ari_events is None else dict(ari_events)

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("acdkit_redis_round_trips", "Round trips to Redis of this "
                                  "process: one per command, pipeline or transaction",
                                  value=self.round_trips)
        if self.ari_requests is not None:
            ari = CounterMetricFamily("acdkit_ari_requests", "ARI requests sent",
                                      labels=["method", "route"])
            for (method, route), sent in sorted(self.ari_requests.items()):
                ari.add_metric([method, route], sent)
            yield ari
        if self.ari_events is not None:
            events = CounterMetricFamily("acdkit_ari_events", "ARI events received",
                                         labels=["type"])
            for kind, got in sorted(self.ari_events.items()):
                events.add_metric([kind], got)
            yield events


def _buckets(waits: tuple[float, ...]) -> list[tuple[str, float]]:
    return [*((floatToGoString(edge),  # type: ignore[no-untyped-call]
               float(sum(1 for w in waits if w <= edge)))
              for edge in WAIT_BUCKETS),
            ("+Inf", float(len(waits)))]


class MetricsEndpoint:
    """The aiohttp handler; one scrape computes at a time, a close second one reuses it."""

    def __init__(self, pool: Pool, settings: Settings,
                 ari_requests: Mapping[tuple[str, str], int] | None = None,
                 round_trips: RoundTrips = ROUND_TRIPS,
                 ari_events: Mapping[str, int] | None = None) -> None:
        self.pool = pool
        self.settings = settings
        self.ari_requests = ari_requests
        self.ari_events = ari_events
        self.round_trips = round_trips
        self._lock = asyncio.Lock()
        self._last: tuple[float, bytes] | None = None

    async def handle(self, _: web.Request) -> web.Response:
        counters = CollectorRegistry(auto_describe=False)
        counters.register(ProcessCollector(self.round_trips, self.ari_requests,
                                           self.ari_events))
        head = generate_latest(counters)
        async with self._lock:
            if self._last is None or time.monotonic() - self._last[0] > MIN_INTERVAL:
                try:
                    snap = await snapshot(self.pool, self.settings, time.time())
                except AcdError as err:
                    log.warning("metrics: %s", err)
                    raise web.HTTPServiceUnavailable(text=str(err)) from None
                registry = CollectorRegistry(auto_describe=False)
                registry.register(CenterCollector(snap))
                self._last = (time.monotonic(), generate_latest(registry))
            body = head + self._last[1]
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def routes(pool: Pool, settings: Settings,
           ari_requests: Mapping[tuple[str, str], int] | None = None,
           ari_events: Mapping[str, int] | None = None) -> list[web.RouteDef]:
    """``GET /metrics`` for an aiohttp application; ``ari_requests``: the ARI client's
    counts of requests sent, by (method, route); ``ari_events``: of events, by type."""
    return [web.get("/metrics", MetricsEndpoint(pool, settings, ari_requests,
                                                ari_events=ari_events).handle)]
