"""``acdkit stats``: per skill, waiting tasks, the oldest wait, agents, tasks done."""

from __future__ import annotations

import time
from typing import Any

import click

from acdkit.cli.common import emit, handle_errors, jsonable, run, settings_of, with_pool
from acdkit.stats import SkillRow, skill_rows
from acdkit.store.pool import Pool

COLUMNS = ["skill", "waiting", "oldest_wait", "ready", "on_call", "paused", "done_last_hour"]


def _row(row: SkillRow, as_json: bool) -> dict[str, Any]:
    values: dict[str, Any] = jsonable(row)
    if not as_json and row.oldest_wait is not None:
        values["oldest_wait"] = f"{row.oldest_wait:.0f}s"
    if not as_json and row.pause_reasons:
        values["paused"] = f"{row.paused} (" + ", ".join(
            f"{reason} {n}" for reason, n in row.pause_reasons.items()) + ")"
    return values


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def stats(ctx: click.Context, as_json: bool) -> None:
    """Per skill: tasks waiting, oldest wait, agents ready, on a call and paused (with the
    reasons), done in the last hour."""

    async def work(pool: Pool) -> list[SkillRow]:
        return await skill_rows(pool, time.time())

    rows = run(with_pool(settings_of(ctx), work))
    emit([_row(r, as_json) for r in rows], as_json, COLUMNS)
