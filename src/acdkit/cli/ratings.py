"""``acdkit ratings``: aggregates per agent and category, customers' scores, and managing
one's own ratings (a customer by number, an agent by id) of interactions that happened."""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from acdkit.cli.common import LIMIT, TEXT, emit, handle_errors, run, settings_of, with_pool
from acdkit.config import RatingSettings
from acdkit.core.agents import hash_pin
from acdkit.core.errors import InvalidInput
from acdkit.core.ratings import Direction, Rating, Score, Summary
from acdkit.ports import SystemClock
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore, rating_store

T = TypeVar("T")


def _with_ratings(ctx: click.Context, work: Callable[[RatingStore], Coroutine[Any, Any, T]]) -> T:
    settings = settings_of(ctx)

    async def on_pool(pool: Pool) -> T:
        return await work(rating_store(pool, settings.ratings))

    return run(with_pool(settings, on_pool))


def _score(score: Score) -> dict[str, Any]:
    return {"count": score.count, "mean": score.mean, "shrunk": score.shrunk}


def _cell(score: Score) -> str:
    return "-" if score.shrunk is None else f"{score.shrunk:.2f} ({score.count})"


def _summary_row(summary: Summary, declines: int | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": summary.ratee, "ratings": summary.ratings,
                           "overall": _score(summary.overall),
                           "categories": {c: _score(s) for c, s in summary.categories.items()}}
    return row if declines is None else {**row, "declines": declines}


def _table(rows: list[dict[str, Any]], summaries: list[Summary], extra: list[str]) -> None:
    cells = [{**{k: v for k, v in row.items() if k not in ("overall", "categories")},
              "overall": _cell(s.overall), **{c: _cell(v) for c, v in s.categories.items()}}
             for row, s in zip(rows, summaries, strict=True)]
    cats = list(summaries[0].categories) if summaries else []
    emit(cells, False, ["id", "ratings", "overall", *cats, *extra])


async def agent_columns(pool: Pool, settings: RatingSettings) -> dict[str, dict[str, Any]]:
    """Per agent id, for `acdkit agents list`: its shrunk overall rating by customers, its
    number of ratings and the calls it declined from the whisper."""
    store = rating_store(pool, settings)
    ids = sorted(agent.id for agent in await pool.list_agents())
    declines = await store.declines()
    shrunk = {s.ratee: s for s in await store.summaries(ratees=ids)}
    return {agent_id: {"rating": None if (mean := shrunk[agent_id].overall.shrunk) is None
                       else round(mean, 2), "ratings": shrunk[agent_id].ratings,
                       "declines": declines.get(agent_id, 0)} for agent_id in ids}


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def ratings(ctx: click.Context, as_json: bool) -> None:
    """Ratings: per-agent aggregates (shrunk means, counts) and managing your own ratings.

    Means are Bayesian (shrunk): (prior_weight * prior_mean + sum) / (prior_weight + count).
    """
    if ctx.invoked_subcommand is None:
        _agents(ctx, as_json)


def _agents(ctx: click.Context, as_json: bool) -> None:
    async def work(store: RatingStore) -> tuple[list[Summary], dict[str, int]]:
        ids = {a.id for a in await store.pool.list_agents()}
        ids |= {s.ratee for s in await store.summaries()}
        return await store.summaries(ratees=sorted(ids)), await store.declines()

    summaries, declines = _with_ratings(ctx, work)
    rows = [_summary_row(s, declines.get(s.ratee, 0)) for s in summaries]
    if as_json:
        emit(rows, True, [])
    else:
        _table(rows, summaries, ["declines"])


@ratings.command("agents")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def agents_(ctx: click.Context, as_json: bool) -> None:
    """Every agent, best-rated first: per category and overall, calls declined."""
    _agents(ctx, as_json)


@ratings.command("customers")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def customers(ctx: click.Context, as_json: bool) -> None:
    """Customers rated by agents, best first (the score the priority rules weigh)."""

    async def work(store: RatingStore) -> list[Summary]:
        return await store.summaries(Direction.OF_CUSTOMER)

    summaries = _with_ratings(ctx, work)
    rows = [{"number": s.ratee, "ratings": s.ratings, **_score(s.overall)} for s in summaries]
    emit(rows, as_json, ["number", "ratings", "shrunk", "mean", "count"])


def _rating_row(rating: Rating | None) -> dict[str, Any]:
    if rating is None:
        return {"scores": None}
    return {"scores": dict(rating.scores), "rated_at": rating.at}


@ratings.command("served")
@click.option("--number", type=TEXT, default="", help="a customer's calling number")
@click.option("--agent", "agent_id", type=TEXT, default="", help="an agent id")
@click.option("--limit", type=LIMIT, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def served(ctx: click.Context, number: str, agent_id: str, limit: int, as_json: bool) -> None:
    """The interactions a customer (or an agent) may rate, newest first, with its rating."""
    if bool(number) == bool(agent_id):
        raise InvalidInput("give --number or --agent")
    direction = Direction.OF_CUSTOMER if agent_id else Direction.OF_AGENT

    async def work(store: RatingStore) -> list[dict[str, Any]]:
        found = await store.served(agent_id=agent_id, number=number, limit=limit)
        return [{"task": i.task_id, "agent": i.agent_id, "number": i.number, "skill": i.skill,
                 "served_at": i.served_at, **_rating_row(await store.get(i.task_id, direction))}
                for i in found]

    emit(_with_ratings(ctx, work), as_json, ["task", "agent", "number", "skill", "scores"])


def _scores(values: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, int]:
    """``CAT=N`` pairs, or one bare ``N`` for every category the rater answers."""
    scores: dict[str, int] = {}
    for value in values:
        name, sep, raw = value.rpartition("=")
        if not raw.isdigit():
            raise InvalidInput(f"score {value!r}: expected N or CATEGORY=N (N = 1 to 5)")
        for category in ([name] if sep else list(allowed)):
            scores[category] = int(raw)
    return scores


@ratings.command("rate")
@click.argument("task_id", type=TEXT)
@click.option("--as", "rater", type=TEXT, required=True,
              help="the customer's number or the agent's id")
@click.option("--score", "values", type=TEXT, multiple=True, required=True,
              help="CATEGORY=N, or N for every category (an agent rates overall); repeat")
@click.pass_context
@handle_errors
def rate(ctx: click.Context, task_id: str, rater: str, values: tuple[str, ...]) -> None:
    """Add or change your rating of the other side of interaction TASK_ID."""

    async def work(store: RatingStore) -> Rating:
        _, direction, _ = await store.resolve(task_id, rater, None)
        return await store.rate(task_id=task_id, rater=rater,
                                scores=_scores(values, store.allowed(direction)),
                                now=SystemClock().now())

    done = _with_ratings(ctx, work)
    shown = ", ".join(f"{k}={v}" for k, v in sorted(done.scores.items()))
    click.echo(f"task {task_id}: {rater} rated {done.ratee}: {shown}")


@ratings.command("delete")
@click.argument("task_id", type=TEXT)
@click.option("--as", "rater", type=TEXT, required=True,
              help="the customer's number or the agent's id")
@click.pass_context
@handle_errors
def delete(ctx: click.Context, task_id: str, rater: str) -> None:
    """Delete your own rating of interaction TASK_ID."""

    async def work(store: RatingStore) -> None:
        await store.delete(task_id=task_id, rater=rater, now=SystemClock().now())

    _with_ratings(ctx, work)
    click.echo(f"task {task_id}: rating by {rater} deleted")


@ratings.command("show")
@click.argument("agent_id", type=TEXT)
@click.option("--limit", type=LIMIT, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def show(ctx: click.Context, agent_id: str, limit: int, as_json: bool) -> None:
    """One agent's latest ratings by customers, newest first."""

    async def work(store: RatingStore) -> list[Rating]:
        return await store.ratings_of(Direction.OF_AGENT, agent_id, limit)

    rows = [{"task": r.task_id, "rater": r.rater, "scores": dict(r.scores), "at": r.at}
            for r in _with_ratings(ctx, work)]
    emit(rows, as_json, ["task", "rater", "scores", "at"])


@ratings.command("pin")
@click.argument("number", type=TEXT)
@click.option("--pin", type=TEXT, default=None,
              help="4-12 digits (asked for, hidden, when not given)")
@click.option("--clear", is_flag=True, help="remove the number's PIN")
@click.pass_context
@handle_errors
def pin(ctx: click.Context, number: str, pin: str | None, clear: bool) -> None:
    """Set the PIN the customer NUMBER keys on the ratings line (ratings.customer_pin).

    Only a salted hash is stored.
    """
    if clear and pin is not None:
        raise InvalidInput("give --pin or --clear, not both")
    if not clear and pin is None:
        pin = click.prompt("PIN", hide_input=True, confirmation_prompt=True)
    hashed = None if clear else hash_pin(str(pin), os.urandom(16))

    async def work(store: RatingStore) -> None:
        await store.set_pin(number, hashed)

    _with_ratings(ctx, work)
    click.echo(f"{number}: ratings PIN {'removed' if clear else 'set'}")
