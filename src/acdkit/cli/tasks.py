"""``acdkit tasks``: list and show the pool."""

from __future__ import annotations

from typing import Any

import click

from acdkit.cli.common import (
    TEXT,
    emit,
    handle_errors,
    history_rows,
    jsonable,
    run,
    settings_of,
    show_fields,
    with_pool,
)
from acdkit.core.errors import NoSuchTask
from acdkit.core.tasks import Task, TaskState
from acdkit.store.pool import Pool


def _row(task: Task) -> dict[str, Any]:
    return {"id": task.id, "kind": task.kind.value, "skill": task.skill,
            "state": task.state.value, "number": task.number, "agent": task.agent_id,
            "priority": task.priority, "attempts": task.attempts, "outcome": task.outcome}


@click.group()
def tasks() -> None:
    """The one task pool: live calls, callbacks, voice requests, outbound work."""


@tasks.command("list")
@click.option("--state", type=click.Choice([s.value for s in TaskState]), multiple=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def list_(ctx: click.Context, state: tuple[str, ...], as_json: bool) -> None:
    """Tasks, newest first."""

    async def work(pool: Pool) -> list[Task]:
        return await pool.list_tasks()

    found = run(with_pool(settings_of(ctx), work))
    rows = [_row(t) for t in sorted(found, key=lambda t: -t.created_at)
            if not state or t.state.value in state]
    emit(rows, as_json, ["id", "kind", "skill", "state", "number", "agent", "outcome"])


@tasks.command("show")
@click.argument("task_id", type=TEXT)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def show(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """One task and its whole history from the audit stream."""

    async def work(pool: Pool) -> tuple[Task | None, list[Any]]:
        return await pool.get_task(task_id), await pool.audit.history(task_id)

    task, history = run(with_pool(settings_of(ctx), work))
    if task is None:
        raise NoSuchTask(f"no task {task_id!r}")
    if as_json:
        emit([{"task": jsonable(task), "history": jsonable(history)}], True, [])
        return
    show_fields({**_row(task), "created_at": task.created_at, "enqueued_at": task.enqueued_at,
                 "due_at": task.due_at}, width=11)
    emit(history_rows(history), False, ["ts", "event", "detail"])
