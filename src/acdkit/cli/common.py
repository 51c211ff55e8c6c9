"""What every command shares: settings, asyncio, errors to exit codes, free-text options,
tables and JSON."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import fields, is_dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click

try:
    from uvloop import new_event_loop
except ImportError:  # a platform uvloop does not build for (pyproject.toml)
    from asyncio import new_event_loop  # type: ignore[assignment]  # a plain asyncio loop

from acdkit.config import Settings
from acdkit.core.errors import AcdError
from acdkit.core.text import shown, text_problem
from acdkit.store.pool import Pool

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop where it is installed: serve then spends 10-17% less CPU per
    call than on asyncio's own loop (docs/benchmarks.md, "The call path, change by change")."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AcdError as exc:
            click.secho(f"acdkit: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)

    return wrapper


class FreeText(click.types.StringParamType):
    """One line of free text (names, reasons, sources, attributes, ids): at most
    ``max_length`` characters and no control character (``core/text.py``: no CR/LF, no
    terminal escape sequence, no undecodable byte). A wrong value is a usage error (exit 2)
    that names the option, before anything is read or written."""

    name = "text"

    def __init__(self, max_length: int = 200) -> None:
        self.max_length = max_length

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        problem = text_problem(text, self.max_length)
        if problem is not None:
            self.fail(f"{shown(text)} {problem}", param, ctx)
        return text


TEXT = FreeText()  # every free-text option and argument of the CLI
LONG_TEXT = FreeText(4000)  # an answer that TTS speaks to a customer
LIMIT = click.IntRange(1, 100_000)  # how many rows a listing shows


def settings_of(ctx: click.Context) -> Settings:
    return ctx.ensure_object(dict)["settings"]  # type: ignore[no-any-return]


def jsonable(value: Any) -> Any:
    """Plain JSON values from dataclasses, enums and read-only mappings (asdict cannot copy
    the MappingProxyType fields of tasks and agents)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "items"):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


# ---- times for people -----------------------------------------------------------------------
# A key named ``ts``, ``at`` or ``*_at`` holds epoch seconds. Tables print it in the center's
# time zone (``2026-12-04 14:30:05``); JSON keeps the number and adds ``<key>_iso``.


def is_time_key(key: str) -> bool:
    return key in ("ts", "at") or key.endswith("_at")


def center_zone() -> ZoneInfo:
    """The center's time zone (``center.timezone``) of the running command; UTC outside one."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx else None
    settings = obj.get("settings") if isinstance(obj, dict) else None
    return ZoneInfo(settings.center.timezone if settings else "UTC")


def human_time(ts: float | None, zone: ZoneInfo) -> str:
    """``2026-12-04 14:30:05`` in ``zone``; empty for None."""
    return "" if ts is None else datetime.fromtimestamp(ts, zone).strftime("%Y-%m-%d %H:%M:%S")


def iso_time(ts: float, zone: ZoneInfo) -> str:
    """ISO 8601 with the zone's offset: ``2026-12-04T14:30:05-05:00``."""
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def with_iso(value: Any, zone: ZoneInfo) -> Any:
    """``value`` (plain JSON) with ``<key>_iso`` next to every time key holding a number."""
    if isinstance(value, list):
        return [with_iso(v, zone) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        out[key] = with_iso(item, zone)
        if is_time_key(key) and isinstance(item, int | float) and not isinstance(item, bool):
            out[f"{key}_iso"] = iso_time(item, zone)
    return out


def cell(key: str, value: Any, zone: ZoneInfo) -> str:
    """One table cell: times as human_time, None as empty."""
    if value is None:
        return ""
    if is_time_key(key) and isinstance(value, int | float) and not isinstance(value, bool):
        return human_time(value, zone)
    return str(value)


AUDIT_TIMES = ("enq", "created", "due")  # epoch facts an audit event carries (docs/kpis.md)


def history_rows(history: Iterable[Any]) -> list[dict[str, Any]]:
    """Audit events (``ts``, ``event``, ``fields``) as table rows: the fields in one
    ``detail`` cell, empty ones left out, their epoch times in the center's zone."""
    zone = center_zone()
    rows = []
    for entry in history:
        ts, event, fields = (entry["ts"], entry["event"], entry["fields"]) \
            if isinstance(entry, dict) else (entry.ts, entry.event, entry.fields)
        detail = []
        for key, value in fields.items():
            if value in ("", None):
                continue
            if key in AUDIT_TIMES:
                with contextlib.suppress(ValueError):
                    value = human_time(float(value), zone)
            detail.append(f"{key}={value}")
        rows.append({"ts": ts, "event": event, "detail": " ".join(detail)})
    return rows


def emit(rows: Sequence[dict[str, Any]], as_json: bool, columns: Iterable[str]) -> None:
    """Print ``rows`` as JSON for scripts or as an aligned table for people (times in the
    center's zone; a time column's header drops its ``_at``)."""
    zone = center_zone()
    if as_json:
        click.echo(json.dumps(with_iso(jsonable(list(rows)), zone), indent=2, default=str))
        return
    cols = list(columns)
    cells = [[cell(c, r.get(c), zone) for c in cols] for r in rows]
    heads = [c.removesuffix("_at") if is_time_key(c) else c for c in cols]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(heads)]
    click.echo("  ".join(h.upper().ljust(w) for h, w in zip(heads, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def show_fields(row: dict[str, Any], width: int = 9) -> None:
    """One record as ``key: value`` lines, times as in tables."""
    zone = center_zone()
    for key, value in row.items():
        label = key.removesuffix("_at") if is_time_key(key) else key
        click.echo(f"{label:>{width}}: {cell(key, value, zone)}")


async def with_pool(settings: Settings, work: Callable[[Pool], Coroutine[Any, Any, T]]) -> T:
    """Open the Redis pool, run ``work(pool)``, close it."""
    from acdkit.bootstrap import open_pool

    pool = await open_pool(settings)
    try:
        return await work(pool)
    finally:
        await pool.close()
