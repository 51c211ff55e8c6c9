"""``acdkit dnc``: the do-not-call list kept in Redis (next to ``numbers.do_not_call``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from acdkit.cli.common import TEXT, emit, handle_errors, run, settings_of, with_pool
from acdkit.core.errors import NumberRejected
from acdkit.core.numbers import normalize
from acdkit.policies import number_policy
from acdkit.store.dnc import dnc_add, dnc_numbers, dnc_remove
from acdkit.store.pool import Pool


def _normalized(ctx: click.Context, raw: list[str], strict: bool = True) -> tuple[list[str],
                                                                                   list[str]]:
    """E.164 forms of ``raw``; the entries that are not numbers. A number already on the
    configured list is kept (listing it twice does no harm)."""
    policy = number_policy(settings_of(ctx))
    policy = replace(policy, dnc=frozenset())
    good, bad = [], []
    for item in raw:
        try:
            good.append(normalize(item, policy))
        except NumberRejected as exc:
            if strict:
                raise
            bad.append(f"{item}: {exc.reason}")
    return good, bad


@click.group()
def dnc() -> None:
    """The do-not-call list: numbers acdkit never dials."""


@dnc.command("add")
@click.argument("numbers", type=TEXT, nargs=-1, required=True)
@click.pass_context
@handle_errors
def add(ctx: click.Context, numbers: tuple[str, ...]) -> None:
    """Put NUMBERS on the list."""
    good, _ = _normalized(ctx, list(numbers))
    added = run(with_pool(settings_of(ctx), lambda pool: dnc_add(pool, good)))
    click.echo(f"{added} added, {len(good) - added} already listed")


@dnc.command("remove")
@click.argument("numbers", type=TEXT, nargs=-1, required=True)
@click.pass_context
@handle_errors
def remove(ctx: click.Context, numbers: tuple[str, ...]) -> None:
    """Take NUMBERS off the list (the configured numbers.do_not_call stays)."""
    good, _ = _normalized(ctx, list(numbers))
    removed = run(with_pool(settings_of(ctx), lambda pool: dnc_remove(pool, good)))
    click.echo(f"{removed} removed")


@dnc.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
@handle_errors
def import_(ctx: click.Context, file: Path) -> None:
    """Add the numbers of FILE: one per line (or the first CSV column); '#' starts a comment."""
    lines = [ln.split(",")[0].strip() for ln in file.read_text("utf-8").splitlines()]
    raw = [ln for ln in lines if ln and not ln.startswith("#") and ln.lower() != "number"]
    good, bad = _normalized(ctx, raw, strict=False)
    added = run(with_pool(settings_of(ctx), lambda pool: dnc_add(pool, good)))
    click.echo(f"{added} added, {len(good) - added} already listed, {len(bad)} rejected")
    for line in bad:
        click.echo(f"  rejected {line}", err=True)


@dnc.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def list_(ctx: click.Context, as_json: bool) -> None:
    """The numbers on the list in Redis."""

    async def work(pool: Pool) -> list[str]:
        return await dnc_numbers(pool)

    numbers = run(with_pool(settings_of(ctx), work))
    emit([{"number": n} for n in numbers], as_json, ["number"])
