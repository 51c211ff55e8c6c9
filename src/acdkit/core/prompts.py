"""What a caller hears, as media URIs both call paths play: Stasis (``ari/``) and dialplan
mode (``agi/``). Sound files live under ``sound:acdkit/`` (asterisk/sounds)."""

from __future__ import annotations

from collections.abc import Sequence

from acdkit.core.ratings import DEFAULT_CATEGORIES, OVERALL, Summary, spoken

NO_CHOICE = frozenset({"0", "#"})  # keys that leave the choose-agent menu without a choice


def prompt(name: str) -> str:
    """The media URI of acdkit's sound ``name``."""
    return f"sound:acdkit/{name}"


def say_digits(number: str, last: int = 0) -> list[str]:
    """The media that reads ``number`` digit by digit (only the ``last`` digits if > 0);
    empty when ``number`` holds no digit."""
    digits = "".join(c for c in number if c.isdigit())[-last if last > 0 else 0:]
    return [f"digits:{digits}"] if digits else []


def say_score(value: float | None) -> list[str]:
    """"rated 4 point 8" (or "not rated yet" for None) as media."""
    if value is None:
        return [prompt("rate-not-rated")]
    whole, tenth = spoken(value)
    return [prompt("rate-rated"), f"digits:{whole}", prompt("rate-point"), f"digits:{tenth}"]


def question(category: str, index: int) -> list[str]:
    """The survey question for ``category`` (the ``index``-th asked): its own prompt for the
    default categories, else "question N"."""
    if category == OVERALL:
        return [prompt("rate-customer")]
    if category in DEFAULT_CATEGORIES:
        return [prompt(f"rate-q-{category}")]
    return [prompt("rate-question"), f"digits:{index}", prompt("rate-scale")]


def agent_menu(agents: Sequence[Summary]) -> list[str]:
    """The choose-agent menu: each agent of ``agents`` with its rating and its key (1..N)."""
    media = [prompt("rate-choose-intro")]
    for key, summary in enumerate(agents, 1):
        media += [prompt("rate-agent"), *say_digits(summary.ratee), *say_score(
            summary.overall.shrunk), prompt("rate-press"), f"digits:{key}"]
    return [*media, prompt("rate-choose-any")]
