"""The acdkit command line: serve, doctor, agents, tasks.

Every listing has ``--json`` (the stable surface for scripts); errors from the one error tree
become a clear message on stderr and the error's exit code.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from acdkit.cli.agents import agents
from acdkit.cli.agi import agi
from acdkit.cli.callbacks import callbacks
from acdkit.cli.common import emit, handle_errors, run, settings_of
from acdkit.cli.dnc import dnc
from acdkit.cli.outbound import add_outbound_commands
from acdkit.cli.ratings import ratings
from acdkit.cli.requests import requests
from acdkit.cli.stats import stats
from acdkit.cli.tasks import tasks
from acdkit.cli.web import users, web
from acdkit.cli.worker import worker
from acdkit.config import load_settings
from acdkit.limits import raise_fd_limit


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="acdkit.toml to read (default: $ACDKIT_CONFIG or ./acdkit.toml)")
@click.option("--redis-url", help="overrides redis.url")
@click.option("--ari-url", help="overrides ari.url")
@click.option("-v", "--verbose", count=True)
@click.pass_context
@handle_errors
def main(ctx: click.Context, config_path: Path | None, redis_url: str | None,
         ari_url: str | None, verbose: int) -> None:
    """acdkit: a contact center on a real Asterisk."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise_fd_limit()  # serve, agi, worker and web hold many sockets (docs/security.md)
    ctx.ensure_object(dict)["settings"] = load_settings(
        config_path, os.environ, {"redis.url": redis_url, "ari.url": ari_url})


@main.command()
@click.pass_context
@handle_errors
def serve(ctx: click.Context) -> None:
    """Run the Stasis app and the dispatcher (logs every connect and disconnect)."""
    from acdkit.bootstrap import serve as serve_forever

    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    run(serve_forever(settings_of(ctx)))


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check Redis, ARI, AMI, the Asterisk version and listening addresses."""
    from acdkit.doctor import run_checks

    checks = run(run_checks(settings_of(ctx)))
    emit([c.as_row() for c in checks], as_json, ["check", "status", "detail"])
    failed = [c for c in checks if c.status == "FAIL"]
    if failed:
        click.secho("acdkit doctor: " + "; ".join(f"{c.check}: {c.detail}" for c in failed),
                    fg="red", err=True)
        sys.exit(1)


main.add_command(agents)
main.add_command(agi)
add_outbound_commands(tasks)  # import, cancel, explain, followup (cli/outbound.py)
main.add_command(tasks)
main.add_command(dnc)
main.add_command(stats)
main.add_command(callbacks)
main.add_command(worker)
main.add_command(ratings)
main.add_command(requests)
main.add_command(web)
main.add_command(users)
