"""``acdkit agi``: dialplan mode (FastAGI routes, the AMI watcher, dial-back into Queue())."""

from __future__ import annotations

import logging

import click

from acdkit.cli.common import TEXT, handle_errors, run, settings_of


@click.command()
@click.option("--host", type=TEXT, help="overrides agi.host (default 127.0.0.1: loopback only)")
@click.option("--port", type=click.IntRange(1, 65_535), help="overrides agi.port (default 4573)")
@click.option("--no-ami", is_flag=True,
              help="FastAGI routes only: no AMI watcher, no dial-back, no follow-ups")
@click.pass_context
@handle_errors
def agi(ctx: click.Context, host: str | None, port: int | None, no_ami: bool) -> None:
    """Serve dialplan mode: AGI(agi://HOST:PORT/callback-offer?queue=...) and friends."""
    from dataclasses import replace

    from acdkit.bootstrap import run_agi

    settings = settings_of(ctx)
    a = settings.agi
    settings = replace(settings, agi=replace(a, host=host or a.host, port=port or a.port))
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    run(run_agi(settings, with_ami=False if no_ami else None))
