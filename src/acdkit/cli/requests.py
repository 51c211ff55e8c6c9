"""``acdkit requests``: list, show, reply (by text), close voice requests."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import fields
from typing import Any, TypeVar

import click

from acdkit.cli.common import (
    LIMIT,
    LONG_TEXT,
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
from acdkit.core.errors import InvalidTransition, NotFound
from acdkit.core.requests import RequestEvent, VoiceRequest
from acdkit.core.tasks import TaskEvent
from acdkit.ports import SystemClock
from acdkit.store.pool import Pool
from acdkit.store.primary import primary_of
from acdkit.store.requests import RequestStore, store_reply

T = TypeVar("T")
COLUMNS = ["ref", "id", "status", "task", "skill", "number", "created_at", "transcript"]


def _json(request: VoiceRequest) -> dict[str, Any]:
    return {f.name: jsonable(getattr(request, f.name)) for f in fields(request)}


def _with_store(ctx: click.Context, work: Callable[[RequestStore], Awaitable[T]]) -> T:
    settings = settings_of(ctx)

    async def opened(pool: Pool) -> T:
        return await work(RequestStore(pool, settings.requests))

    return run(with_pool(settings, opened))


@click.group()
def requests() -> None:
    """Voice requests: what callers asked, transcripts, replies and their delivery."""


@requests.command("list")
@click.option("--limit", type=LIMIT, default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def list_requests(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The newest voice requests first."""

    async def work(store: RequestStore) -> list[dict[str, Any]]:
        rows = []
        for r in await store.newest(limit):
            task = await store.pool.get_task(r.task_id)
            rows.append({**_json(r), "id": r.task_id, "task": task.state.value if task else ""})
        return rows

    rows = _with_store(ctx, work)
    if not as_json:
        rows = [{**r, "transcript": (r["transcript"] or r["error"])[:50]} for r in rows]
    emit(rows, as_json, COLUMNS)


@requests.command()
@click.argument("ref", type=TEXT)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One request (task id or reference): transcript, reply, the task and its history."""

    async def work(store: RequestStore) -> dict[str, Any]:
        request = await store.find(ref)
        task = await store.pool.get_task(request.task_id)
        history = await store.pool.audit.history(request.task_id)
        return {"request": _json(request), "task_state": task.state.value if task else None,
                "audio": str(store.audio_path(request.audio)),
                "history": [{"ts": e.ts, "event": e.event, "fields": dict(e.fields)}
                            for e in history]}

    story = _with_store(ctx, work)
    if as_json:
        emit([story], True, [])
        return
    show_fields(story["request"], width=12)
    click.echo(f"{'task':>12}: {story['task_state']}")
    click.echo(f"{'audio file':>12}: {story['audio']}")
    emit(history_rows(story["history"]), False, ["ts", "event", "detail"])


@requests.command()
@click.argument("ref", type=TEXT)
@click.option("--text", type=LONG_TEXT, required=True,
              help="the answer, spoken to the customer by TTS")
@click.option("--by", type=TEXT, default="", help="who answers (an agent id)")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def reply(ctx: click.Context, ref: str, text: str, by: str, as_json: bool) -> None:
    """Answer a request by text; a worker calls the customer and speaks it."""
    from acdkit.jobqueue import RqJobQueue

    settings = settings_of(ctx)
    jobs = RqJobQueue(primary_of(settings.redis))

    async def work(store: RequestStore) -> VoiceRequest:
        request = await store.find(ref)
        return await store_reply(store, jobs, request.task_id, SystemClock().now(), text=text,
                                 by=by)

    try:
        done = _with_store(ctx, work)
    finally:
        jobs.close()
    emit([{"id": done.task_id, "ref": done.ref, "status": done.status.value}], as_json,
         ["id", "ref", "status"])


@requests.command()
@click.argument("ref", type=TEXT)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def close(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Close a request; its work order leaves the pool if nobody took it yet."""

    async def work(store: RequestStore) -> VoiceRequest:
        request = await store.find(ref)
        now = SystemClock().now()
        closed = await store.move(request.task_id, RequestEvent.CLOSE, now)
        # Done already, or being worked on (it ends by itself): nothing to cancel then.
        with contextlib.suppress(InvalidTransition, NotFound):
            await store.pool.move_task(request.task_id, TaskEvent.CANCEL, now,
                                       outcome="request closed")
        return closed

    done = _with_store(ctx, work)
    emit([{"id": done.task_id, "ref": done.ref, "status": done.status.value}], as_json,
         ["id", "ref", "status"])
