"""``acdkit stats``: the queue KPIs of a window (docs/kpis.md) and, per skill, what is
waiting now."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click

from acdkit.cli.common import emit, handle_errors, jsonable, run, settings_of, with_pool
from acdkit.config import Settings
from acdkit.core.kpis import Kpis, parse_window
from acdkit.stats import SkillRow, skill_rows
from acdkit.store.kpis import kpi_settings, read_kpis, trimmed_before
from acdkit.store.pool import Pool

COLUMNS = ["skill", "waiting", "oldest_wait", "ready", "on_call", "paused", "done_last_hour"]
SECONDS = {"asa", "asa_p90", "aht", "longest_wait", "booking_to_connect_p50",
           "booking_to_connect_p90", "time_to_delivery_p50"}
RATIOS = {"service_level", "abandon_rate", "first_attempt_rate", "occupancy"}
HIDDEN = {"waits", "service_level_formula", "threshold_s"}


def _value(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name in RATIOS:
        return f"{100 * value:.1f}%"
    if name in SECONDS or isinstance(value, float):
        return f"{value:.1f}s"
    return str(value)


def _section(kpis: Kpis, name: str) -> list[dict[str, str]]:
    values = jsonable(getattr(kpis, name))
    rows = []
    for key, value in values.items():
        if key in HIDDEN or isinstance(value, dict):
            continue
        formula = kpis.calls.service_level_formula if key == "service_level" else \
            kpis.formulas.get(key, kpis.formulas.get(f"{name}_{key}", ""))
        if key == "service_level":
            formula += f", T={kpis.calls.threshold_s:g}s"
        rows.append({"figure": f"{name}.{key}", "value": _value(key, value),
                     "formula": formula})
    return rows


def _agent_rows(kpis: Kpis) -> list[dict[str, str]]:
    rows = [{"figure": f"agents.time.{state}", "value": _value(state, spent), "formula": ""}
            for state, spent in sorted(kpis.agents.seconds.items())]
    rows += [{"figure": f"agents.paused.{reason}", "value": _value(reason, spent),
              "formula": ""} for reason, spent in sorted(kpis.agents.paused.items())]
    return [*rows, {"figure": "agents.occupancy",
                    "value": _value("occupancy", kpis.agents.occupancy),
                    "formula": kpis.formulas["occupancy"]}]


def _heading(kpis: Kpis, settings: Settings) -> str:
    zone = ZoneInfo(settings.center.timezone)
    start, end = (datetime.fromtimestamp(t, zone).strftime("%Y-%m-%d %H:%M:%S")
                  for t in (kpis.window.start, kpis.window.end))
    return (f"KPIs {kpis.window.name} ({start} to {end} {settings.center.timezone}), "
            f"skill {kpis.skill or 'all'}, agent {kpis.agent or 'all'}")


@click.command()
@click.option("--skill", help="only this skill")
@click.option("--agent", help="only this agent")
@click.option("--since", default="today", show_default=True,
              help="today (center time zone), 15m, 60m, 2h or an ISO time")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def stats(ctx: click.Context, skill: str | None, agent: str | None, since: str,
          as_json: bool) -> None:
    """Queue KPIs (service level, ASA, AHT, abandons, callbacks, agents) over a window, each
    with its formula; then per skill, what waits now."""
    settings = settings_of(ctx)
    window = parse_window(since, time.time(), settings.center.timezone)
    formulas = kpi_settings(settings.kpis)

    async def work(pool: Pool) -> tuple[Kpis, list[SkillRow], float | None]:
        kpis = await read_kpis(pool, window, formulas, settings.kpis.lookback_s,
                               skill=skill, agent=agent)
        return kpis, await skill_rows(pool, window.end), await trimmed_before(pool)

    kpis, rows, trimmed = run(with_pool(settings, work))
    cut = trimmed if trimmed is not None and trimmed > window.start else None
    if as_json:
        emit([{**jsonable(kpis), "skills": [jsonable(r) for r in rows], "cut_at": cut}],
             True, [])
        return
    click.echo(_heading(kpis, settings))
    if cut is not None:
        click.echo(f"(the audit stream keeps its last 100,000 entries "
                   f"only: figures start at "
                   f"{datetime.fromtimestamp(cut, ZoneInfo(settings.center.timezone)):%H:%M:%S})")
    figures = [row for name in ("calls", "callbacks", "requests", "outbound")
               for row in _section(kpis, name)]
    emit([*figures, *_agent_rows(kpis)], False, ["figure", "value", "formula"])
    click.echo()
    emit([_live(r) for r in rows], False, COLUMNS)


def _live(row: SkillRow) -> dict[str, Any]:
    values: dict[str, Any] = jsonable(row)
    if row.oldest_wait is not None:
        values["oldest_wait"] = f"{row.oldest_wait:.0f}s"
    if row.pause_reasons:
        values["paused"] = f"{row.paused} (" + ", ".join(
            f"{reason} {n}" for reason, n in row.pause_reasons.items()) + ")"
    return values
