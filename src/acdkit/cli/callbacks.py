"""``acdkit callbacks``: list, show, replay, cancel, purge."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import UTC, datetime
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
from acdkit.core.errors import InvalidInput
from acdkit.core.tasks import Task, TaskState
from acdkit.ports import SystemClock
from acdkit.services.callbacks import callback_store
from acdkit.store import lifecycle
from acdkit.store.callbacks import Attempt, CallbackStore

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
COLUMNS = ["id", "state", "skill", "number", "due_at", "attempts", "agent", "outcome"]


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``1h``, ``7d``, ``2w``; raises ``InvalidInput``."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise InvalidInput(f"duration {text!r}: expected a number and s, m, h, d or w (7d)")
    return float(match[1]) * _UNIT[match[2]]


def parse_since(text: str, now: float) -> float:
    """Epoch seconds of ``-1h`` (that long ago) or an ISO 8601 time (UTC when it names no
    zone); raises ``InvalidInput``."""
    if text.startswith("-"):
        return now - parse_duration(text[1:])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--since {text!r}: expected -1h, -7d or an ISO time") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _row(task: Task) -> dict[str, Any]:
    return {"id": task.id, "state": task.state.value, "skill": task.skill,
            "number": task.number, "due_at": task.due_at, "attempts": task.attempts,
            "agent": task.agent_id, "outcome": task.outcome, "created_at": task.created_at,
            "enqueued_at": task.enqueued_at}


def _task_json(task: Task) -> dict[str, Any]:
    # Not jsonable(task): dataclasses.asdict deep-copies, and a MappingProxyType field
    # (required, attributes) cannot be copied.
    return {f.name: jsonable(getattr(task, f.name)) for f in fields(task)}


def _attempt_row(a: Attempt) -> dict[str, Any]:
    return {"attempt": a.n, "agent": a.agent_id, "state": a.state.value,
            "outcome": a.outcome.value if a.outcome else None, "detail": a.detail,
            "requested_at": a.requested_at, "ended_at": a.ended_at, "decided": a.decided,
            "agent_leg": a.agent_leg, "customer_leg": a.customer_leg}


def _with_store(ctx: click.Context, work: Any) -> Any:
    settings = settings_of(ctx)

    async def opened(pool: Any) -> Any:
        return await work(callback_store(pool, settings))

    return run(with_pool(settings, opened))


@click.group()
def callbacks() -> None:
    """Callbacks: who is called back when, every attempt, and what happened."""


@callbacks.command("list")
@click.option("--state", "states", type=click.Choice([s.value for s in TaskState]),
              multiple=True, help="repeat for several")
@click.option("--queue", "skill", type=TEXT, help="only this queue (skill)")
@click.option("--since", type=TEXT, help="created since: -1h, -7d or an ISO time")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def list_(ctx: click.Context, states: tuple[str, ...], skill: str | None, since: str | None,
          as_json: bool) -> None:
    """Callbacks, newest first."""
    after = parse_since(since, SystemClock().now()) if since else None

    async def work(store: CallbackStore) -> list[Task]:
        return await lifecycle.list_callbacks(store, states={TaskState(s) for s in states},
                                              skill=skill, since=after)

    emit([_row(t) for t in _with_store(ctx, work)], as_json, COLUMNS)


@callbacks.command("show")
@click.argument("task_id", type=TEXT)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def show(ctx: click.Context, task_id: str, as_json: bool) -> None:
    """One callback, its attempts and its whole history."""

    async def work(store: CallbackStore) -> tuple[Task, list[Attempt], list[Any]]:
        task = await lifecycle.callback(store, task_id)
        return task, await store.attempts(task_id), await store.pool.audit.history(task_id)

    task, attempts, history = _with_store(ctx, work)
    if as_json:
        emit([{"task": _task_json(task), "attempts": [_attempt_row(a) for a in attempts],
               "history": jsonable(history)}], True, [])
        return
    show_fields(_row(task))
    click.echo("")
    emit([_attempt_row(a) for a in attempts], False,
         ["attempt", "agent", "state", "outcome", "requested_at", "ended_at", "decided"])
    click.echo("")
    emit(history_rows(history), False, ["ts", "event", "detail"])


@callbacks.command("replay")
@click.argument("task_id", type=TEXT)
@click.pass_context
@handle_errors
def replay(ctx: click.Context, task_id: str) -> None:
    """Put a failed or expired callback back in line, due now (its history is kept)."""

    async def work(store: CallbackStore) -> Task:
        return await lifecycle.replay_callback(store, task_id, SystemClock().now())

    task = _with_store(ctx, work)
    click.echo(f"callback {task.id} is due now ({task.state.value} in {task.skill})")


@callbacks.command("cancel")
@click.argument("task_id", type=TEXT)
@click.option("--reason", type=TEXT, default="cancelled by an admin")
@click.pass_context
@handle_errors
def cancel(ctx: click.Context, task_id: str, reason: str) -> None:
    """Cancel a scheduled, queued or reserved callback."""

    async def work(store: CallbackStore) -> Task:
        return await lifecycle.cancel_callback(store, task_id, SystemClock().now(), reason)

    _with_store(ctx, work)
    click.echo(f"callback {task_id} cancelled")


@callbacks.command("purge")
@click.option("--older-than", "older_than", type=TEXT, required=True, help="e.g. 7d, 12h")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def purge(ctx: click.Context, older_than: str, as_json: bool) -> None:
    """Delete ended callbacks (and their attempt records) unchanged for that long; the audit
    stream keeps their story."""
    now = SystemClock().now()
    cutoff = now - parse_duration(older_than)

    async def work(store: CallbackStore) -> list[str]:
        return await lifecycle.purge_callbacks(store, cutoff, now)

    purged = _with_store(ctx, work)
    if as_json:
        emit([{"id": task_id} for task_id in purged], True, ["id"])
    else:
        click.echo(f"purged {len(purged)} callback(s)")
