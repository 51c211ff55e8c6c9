"""``acdkit tasks import|cancel|explain|followup``: outbound work in the pool."""

from __future__ import annotations

import contextlib
import csv
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

from acdkit.cli.common import TEXT, emit, handle_errors, jsonable, run, settings_of, with_pool
from acdkit.config import Settings
from acdkit.core.errors import InvalidInput, InvalidTransition, NoSuchTask
from acdkit.core.importing import ImportPlan
from acdkit.core.numbers import check_dialable, next_calling_time, within_calling_hours
from acdkit.core.routing import effective_priority, points, pool_score
from acdkit.core.tasks import TaskEvent, TaskKind, TaskState
from acdkit.policies import number_policy
from acdkit.store.dnc import on_dnc
from acdkit.store.imports import CountingReader, ImportReport, Rejected, import_csv
from acdkit.store.outbound import add_follow_up, forget_follow_up, judge, stored_rules, with_base
from acdkit.store.pool import Pool

PROGRESS_OVER = 1 << 20  # bytes: smaller files import without a progress bar
SHOWN_REJECTS = 20


def _header_map(pairs: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, column = pair.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise InvalidInput(f"--map {pair!r}: write FIELD=COLUMN, e.g. number=Phone")
        found[name.strip()] = column.strip()
    return found


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """``cell`` with a leading apostrophe when a spreadsheet would take it for a formula."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


class RejectsFile:
    """The ``--rejects`` CSV, written row by row as the import finds them: line, reason and
    the row's cells, every cell neutralised against spreadsheet formulas."""

    def __init__(self, out: IO[str]) -> None:
        self.writer = csv.writer(out)

    def start(self, header: Sequence[str]) -> None:
        self._write(["line", "reason", *header])

    def add(self, rejected: Rejected) -> None:
        self._write([str(rejected.line), rejected.reason, *rejected.cells])

    def _write(self, cells: Sequence[str]) -> None:
        self.writer.writerow([spreadsheet_safe(c) for c in cells])


def _import(settings: Settings, file: Path, plan: ImportPlan, header_map: dict[str, str],
            rejects: RejectsFile | None) -> ImportReport:
    size = file.stat().st_size
    with file.open("rb") as raw:
        counted = CountingReader(raw)
        with click.progressbar(length=size, label=f"importing {file.name}", file=sys.stderr,
                               hidden=size < PROGRESS_OVER) as bar:
            done = 0

            def tick() -> None:
                nonlocal done
                bar.update(counted.count - done)
                done = counted.count

            return run(with_pool(settings, lambda pool: import_csv(
                pool, counted, plan, time.time(), header_map=header_map,  # type: ignore[arg-type]
                progress=tick, rejects=rejects)))


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skill", type=TEXT, default="", help="queue of rows without a skill column")
@click.option("--source", type=TEXT, default="",
              help="source name (default csv:<file name>): part of "
              "each row's stable key, matched by business rules")
@click.option("--map", "maps", type=TEXT, multiple=True, metavar="FIELD=COLUMN",
              help="read a field from another column (number, name, skill, priority, due, key)")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path),
              help="write every rejected row with its reason to this CSV (cells that a "
              "spreadsheet would run as formulas get a leading ')")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def import_(ctx: click.Context, file: Path, skill: str, source: str, maps: tuple[str, ...],
            rejects: Path | None, as_json: bool) -> None:
    """Import outbound tasks from a CSV file; bad rows are reported, good rows kept."""
    settings = settings_of(ctx)
    plan = ImportPlan(source=source or f"csv:{file.name}", default_skill=skill,
                      policy=number_policy(settings), timezone=settings.center.timezone)
    with contextlib.ExitStack() as files:
        sink = None
        if rejects is not None:
            sink = RejectsFile(files.enter_context(
                rejects.open("w", newline="", encoding="utf-8")))
        report = _import(settings, file, plan, _header_map(maps), sink)
    shown = [{"line": r.line, "reason": r.reason} for r in report.first_rejects]
    summary = {"file": str(file), "source": plan.source, "rows": report.rows,
               "added": report.added, "already": report.already, "dropped": report.dropped,
               "rejected": report.rejected, "rejects": shown}
    if as_json:
        emit([summary], True, [])
        return
    click.echo(f"{report.rows} rows: {report.added} added, {report.already} already there, "
               f"{report.dropped} dropped by rules, {report.rejected} rejected")
    if shown:
        emit(shown[:SHOWN_REJECTS], False, ["line", "reason"])
    if report.rejected > SHOWN_REJECTS:
        click.echo(f"... and {report.rejected - SHOWN_REJECTS} more"
                   + ("" if rejects else " (write them all with --rejects FILE)"))


@click.command("cancel")
@click.argument("task_id", type=TEXT)
@click.option("--reason", type=TEXT, default="cancelled by hand")
@click.pass_context
@handle_errors
def cancel(ctx: click.Context, task_id: str, reason: str) -> None:
    """Cancel a waiting (queued or scheduled) task."""

    async def work(pool: Pool) -> None:
        task = await pool.get_task(task_id)
        if task is None:
            raise NoSuchTask(f"no task {task_id!r}")
        if task.state not in (TaskState.QUEUED, TaskState.SCHEDULED):
            raise InvalidTransition("task", task.state, "cancel (only a waiting task)")
        ended = await pool.move_task(task_id, TaskEvent.CANCEL, time.time(), outcome=reason)
        await forget_follow_up(pool, ended)
        if ended.number and ended.kind is TaskKind.CALLBACK:
            await pool.redis.srem(pool.keys.callbacks_of(ended.number), ended.id)

    run(with_pool(settings_of(ctx), work))
    click.echo(f"task {task_id} cancelled")


@click.command("followup")
@click.argument("number", type=TEXT)
@click.option("--skill", type=TEXT, required=True)
@click.option("--reason", type=TEXT, default="agent follow-up")
@click.option("--agent", "agent_id", type=TEXT, default="", help="the agent who asks for it")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def followup(ctx: click.Context, number: str, skill: str, reason: str, agent_id: str,
             as_json: bool) -> None:
    """Schedule a follow-up call to NUMBER (one pending per number)."""
    settings = settings_of(ctx)
    attrs = {"agent": agent_id} if agent_id else {}
    task = run(with_pool(settings, lambda pool: add_follow_up(
        pool, number=number, skill=skill, reason=reason, source="agent", now=time.time(),
        attributes=attrs, policy=number_policy(settings))))
    if as_json:
        emit([{"task": jsonable(task) if task else None}], True, [])
    elif task is None:
        click.echo("no follow-up added: one is pending for that number, or it is on the "
                   "do-not-call list")
    else:
        click.echo(f"follow-up {task.id} queued for {task.number} in {task.skill}")


@click.command("explain")
@click.argument("task_id", type=TEXT)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def explain(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """Why a task has its place: rules fired, priority points, dialing compliance."""
    settings = settings_of(ctx)
    found = run(with_pool(settings, lambda pool: _explain(pool, settings, task_id, time.time())))
    if as_json:
        emit([found], True, [])
        return
    for section, values in found.items():
        click.echo(f"{section}:")
        for key, value in values.items():
            click.echo(f"  {key:>22}: {value}")


async def _explain(pool: Pool, settings: Settings, task_id: str,
                   now: float) -> dict[str, dict[str, Any]]:
    task = await pool.get_task(task_id)
    if task is None:
        raise NoSuchTask(f"no task {task_id!r}")
    stored = await stored_rules(pool, task_id)
    source = with_base(task, stored["base"]) if stored.get("base") else task
    again = judge(pool, source, now)
    rules = pool.rules
    found: dict[str, dict[str, Any]] = {
        "task": {"id": task.id, "kind": task.kind.value, "skill": task.skill,
                 "state": task.state.value, "number": task.number, "source": task.source,
                 "attempts": task.attempts},
        "priority": {
            "source_priority": source.priority, "stored_priority": task.priority,
            "rules_fired": [r for r in stored.get("fired", "").split(",") if r],
            "rules_now": list(again.fired), "dropped_now_by": again.dropped_by or None,
            "priority_now": again.task.priority, "kind_base": rules.base.get(task.kind, 0),
            "points": points(task, rules), "hook": bool(rules.hook),
            "effective_now": round(effective_priority(task, rules, now), 3),
            "score": pool_score(task, rules), "required": dict(task.required)}}
    if task.number:
        found["compliance"] = await _compliance(pool, settings, task.number, now)
    return found


async def _compliance(pool: Pool, settings: Settings, number: str, now: float) -> dict[str, Any]:
    policy = number_policy(settings)
    when = datetime.fromtimestamp(now, UTC)
    dialed = int(await pool.redis.get(pool.keys.rate("dial", number)) or 0)
    listed = await on_dnc(pool, number)
    verdict = check_dialable(number, policy, pending_for_number=0, recent_attempts_number=dialed,
                             recent_requests_caller=0, now=when, on_dnc_list=listed)
    inside = within_calling_hours(number, policy, when)
    return {"dialable_now": verdict.allowed, "reason": verdict.reason or None,
            "do_not_call_config": number in policy.dnc, "do_not_call_list": listed,
            "within_calling_hours": inside,
            "next_calling_time": None if inside else
            next_calling_time(number, policy, when).isoformat(),
            "dials_today": dialed, "max_dials_per_day": policy.max_attempts_per_number}


COMMANDS = (import_, cancel, followup, explain)


def add_outbound_commands(group: click.Group) -> None:
    """Register the outbound commands on the ``tasks`` group."""
    for command in COMMANDS:
        group.add_command(command)
