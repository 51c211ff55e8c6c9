"""``acdkit web`` (the pages) and ``acdkit users`` (supervisor accounts)."""

from __future__ import annotations

import logging
import os

import click

from acdkit.cli.common import emit, handle_errors, run, settings_of, with_pool
from acdkit.core.users import Role, User, check_name, hash_password
from acdkit.store.pool import Pool
from acdkit.store.users import UserStore


@click.command()
@click.option("--listen", help="HOST:PORT (default web.listen, 127.0.0.1:8080)")
@click.pass_context
@handle_errors
def web(ctx: click.Context, listen: str | None) -> None:
    """Serve the wallboard, agent and supervisor pages (docs/pages.md)."""
    from dataclasses import replace

    from acdkit.bootstrap import web as serve_pages

    settings = settings_of(ctx)
    if listen:
        settings = replace(settings, web=replace(settings.web, listen=listen))
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    scheme = "https" if settings.web.tls_cert else "http"
    click.echo(f"acdkit web: {scheme}://{settings.web.listen}/wallboard")
    run(serve_pages(settings))


@click.group()
def users() -> None:
    """Accounts for the pages that are not agents (supervisors)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.SUPERVISOR)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              envvar="ACDKIT_USER_PASSWORD", help="asked for when not given (or from "
              "$ACDKIT_USER_PASSWORD); at least 10 characters")
@click.pass_context
@handle_errors
def add(ctx: click.Context, name: str, role: str, password: str) -> None:
    """Create or replace the account NAME (password hashed with scrypt)."""
    user = User(check_name(name), Role(role), hash_password(password, os.urandom(16)))

    async def work(pool: Pool) -> None:
        await UserStore(pool).save(user)

    run(with_pool(settings_of(ctx), work))
    click.echo(f"user {name} saved ({role})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def list_(ctx: click.Context, as_json: bool) -> None:
    """Every account with its role (never a hash)."""

    async def work(pool: Pool) -> list[dict[str, str]]:
        store = UserStore(pool)
        found = [await store.get(n) for n in await store.names()]
        return [{"name": u.name, "role": u.role.value} for u in found if u is not None]

    emit(run(with_pool(settings_of(ctx), work)), as_json, ["name", "role"])


@users.command("delete")
@click.argument("name")
@click.pass_context
@handle_errors
def delete(ctx: click.Context, name: str) -> None:
    """Delete the account NAME (its open sessions end when they expire)."""

    async def work(pool: Pool) -> None:
        await UserStore(pool).delete(name)

    run(with_pool(settings_of(ctx), work))
    click.echo(f"user {name} deleted")
