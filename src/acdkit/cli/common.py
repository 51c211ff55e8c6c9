"""What every command shares: settings, asyncio, errors to exit codes, free-text options,
tables and JSON."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

import click

from acdkit.config import Settings
from acdkit.core.errors import AcdError
from acdkit.core.text import shown, text_problem
from acdkit.store.pool import Pool

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


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


def emit(rows: Sequence[dict[str, Any]], as_json: bool, columns: Iterable[str]) -> None:
    """Print ``rows`` as JSON for scripts or as an aligned table for people."""
    if as_json:
        click.echo(json.dumps(jsonable(list(rows)), indent=2, default=str))
        return
    cols = list(columns)
    cells = [[str(r.get(c, "") if r.get(c) is not None else "") for c in cols] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(cols)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


async def with_pool(settings: Settings, work: Callable[[Pool], Coroutine[Any, Any, T]]) -> T:
    """Open the Redis pool, run ``work(pool)``, close it."""
    from acdkit.bootstrap import open_pool

    pool = await open_pool(settings)
    try:
        return await work(pool)
    finally:
        await pool.close()
