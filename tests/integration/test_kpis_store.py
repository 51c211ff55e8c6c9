"""KPIs read back from a real redis-server: the Lua scripts' audit entries carry what the
formulas need, the KPI stream gives them back by time, and `acdkit stats` shows them."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from poolkit import RULES, kpi_day

from acdkit.cli import main
from acdkit.config import KpiConfig
from acdkit.core.errors import ConfigError
from acdkit.core.kpis import KpiSettings, SlFormula, Window
from acdkit.store.connection import connect
from acdkit.store.kpis import kpi_settings, read_events, read_kpis, trimmed_before
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration


async def test_figures_from_the_scripts_entries(pool: Pool) -> None:
    b = time.time() - 100
    await kpi_day(pool, b)
    kpis = await read_kpis(pool, Window(b, b + 100), KpiSettings(), 3600.0)
    calls = kpis.calls
    assert (calls.offered, calls.answered, calls.abandoned, calls.short_abandoned) == (2, 1, 1, 1)
    assert calls.service_level == 0.5 and calls.asa == 4 and calls.aht == 35
    assert kpis.agents.paused == {"lunch": 20}
    assert kpis.agents.seconds["on_call"] == 30 and kpis.agents.seconds["reserved"] == 2
    events, last = await read_events(pool, b, b + 100)
    add = next(e for e in events if e["event"] == "add" and e["entity"] == "c2")
    assert (add["skill"], add["tkind"], add["pos"]) == ("sales", "call", "2")
    assert last and (await read_events(pool, b, b + 100, after=last))[0] == []
    # what Python appends (voice requests...) reaches the KPI stream as well
    await pool.audit.append("vr1", "request_recorded", now=b + 90, ref="r1")
    [recorded] = (await read_events(pool, b, b + 100, after=last))[0]
    assert (recorded["event"], recorded["ts"], recorded["ref"]) == ("request_recorded", b + 90,
                                                                     "r1")


async def test_a_full_stream_says_where_it_starts(pool: Pool) -> None:
    b = time.time() - 100
    await kpi_day(pool, b)
    assert await trimmed_before(pool) is None
    pool.audit.maxlen = 5  # as if 100,000 entries had been written since
    first = await trimmed_before(pool)
    assert first is not None and b - 5 < first <= time.time()


async def test_window_reads_only_its_time(pool: Pool) -> None:
    b = time.time() - 100
    await kpi_day(pool, b)
    late = await read_kpis(pool, Window(b + 11, b + 100), KpiSettings(), 0.0)
    # c1 entered and was answered before the window, completed inside it: its handling
    # time counts here, its offer and answer in the window that held them
    assert (late.calls.offered, late.calls.answered, late.calls.aht) == (0, 0, 35)


def test_formula_names_are_checked() -> None:
    assert kpi_settings(KpiConfig(sl_formula="offered_minus_short")).sl_formula is \
        SlFormula.OFFERED_MINUS_SHORT
    with pytest.raises(ConfigError, match=r"kpis\.sl_formula"):
        kpi_settings(KpiConfig(sl_formula="hosted"))


def test_stats_cli(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    b = time.time() - 100

    async def setup() -> None:
        pool = Pool(await connect(redis_url), RULES)
        try:
            await kpi_day(pool, b)
        finally:
            await pool.close()

    asyncio.run(setup())
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    monkeypatch.setenv("ACDKIT_KPIS_SL_FORMULA", "offered_minus_short")
    since = datetime.fromtimestamp(b, UTC).isoformat()
    result = CliRunner().invoke(main, ["stats", "--since", since, "--skill", "sales", "--json"])
    assert result.exit_code == 0, result.output
    [shown] = json.loads(result.output)
    assert shown["calls"]["offered"] == 2 and shown["skill"] == "sales"
    # offered_minus_short: 1 within T / (2 offered - 1 short)
    assert shown["calls"]["service_level"] == 1.0
    assert shown["calls"]["service_level_formula"].startswith("offered_minus_short")
    assert shown["formulas"]["aht"].startswith("mean(talk + wrap_up)")
    table = CliRunner().invoke(main, ["stats", "--since", since])
    assert "calls.service_level" in table.output and "agents.paused.lunch" in table.output
    bad = CliRunner().invoke(main, ["stats", "--since", "yesterday"])
    assert bad.exit_code == 65 and "window" in bad.output
