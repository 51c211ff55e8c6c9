"""Mutual ratings: who may rate whom, valid scores, and shrunk means for ranking.

A rating belongs to one *served interaction* (a task an agent and a customer took part in),
one rater and one ratee. The customer rates the agent in each configured category; the agent
rates the customer with one score (category ``overall``). There is at most one rating per
interaction and direction; its rater may add, change or delete it, nobody else.

Ranking uses a Bayesian (shrunk) mean: ``(prior_weight * prior_mean + sum) / (prior_weight +
count)``. Each ratee starts with ``prior_weight`` imaginary ratings of ``prior_mean``, so one
5-star rating moves a new agent only a little, and an agent with 300 ratings is ranked by its
own scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from acdkit.core.errors import ConfigError, InvalidInput, NotYourRating

MIN_SCORE = 1
MAX_SCORE = 5
DEFAULT_CATEGORIES = ("attitude", "expertise", "availability")
OVERALL = "overall"  # the agent's single score of a customer; also an agent's all-category mean
_CATEGORY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")


class Direction(StrEnum):
    """Who rates whom in one interaction."""

    OF_AGENT = "agent"  # the customer rates the agent (per category)
    OF_CUSTOMER = "customer"  # the agent rates the customer (one score)


@dataclass(frozen=True)
class Interaction:
    """A served task: the agent talked with (or worked for) the customer ``number``."""

    task_id: str
    agent_id: str
    number: str
    skill: str = ""
    served_at: float = 0.0


@dataclass(frozen=True)
class Rating:
    task_id: str
    direction: Direction
    rater: str  # the customer's number or the agent's id
    ratee: str
    scores: Mapping[str, int]
    at: float = 0.0


@dataclass(frozen=True)
class Shrinkage:
    """The prior of the shrunk mean: ``weight`` imaginary ratings of ``mean``."""

    mean: float = 3.0
    weight: float = 5.0

    def __post_init__(self) -> None:
        if not MIN_SCORE <= self.mean <= MAX_SCORE:
            raise ConfigError("ratings.prior_mean", f"must be {MIN_SCORE} to {MAX_SCORE}")
        if self.weight < 0:
            raise ConfigError("ratings.prior_weight", "must be 0 or more")

    def mean_of(self, total: float, count: int) -> float | None:
        """The shrunk mean of ``count`` scores adding up to ``total`` (None: no scores)."""
        if count <= 0:
            return None
        return (self.weight * self.mean + total) / (self.weight + count)


@dataclass(frozen=True)
class Score:
    count: int
    mean: float | None  # the raw mean
    shrunk: float | None


@dataclass(frozen=True)
class Summary:
    """The aggregate of one ratee: per category, and ``overall`` over every score."""

    ratee: str
    ratings: int  # rating records (one per interaction)
    categories: Mapping[str, Score] = field(default_factory=lambda: MappingProxyType({}))
    overall: Score = Score(0, None, None)


def parse_categories(value: str | Iterable[str]) -> tuple[str, ...]:
    """Categories from configuration (a list or ``"a,b,c"``); raise ``ConfigError``."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(item.strip().lower() for item in items if item.strip())
    if not names or len(names) > 9:
        raise ConfigError("ratings.categories", "give 1 to 9 categories (one DTMF question each)")
    for name in names:
        if not set(name) <= _CATEGORY_CHARS or name == OVERALL or len(name) > 32:
            raise ConfigError("ratings.categories", f"bad category name {name!r}")
    if len(set(names)) != len(names):
        raise ConfigError("ratings.categories", "a category is named twice")
    return names


def check_scores(scores: Mapping[str, int], categories: Iterable[str]) -> dict[str, int]:
    """Return ``scores`` if every key is a known category and every value 1–5.

    At least one score is needed (a skipped question leaves its category out). Raises
    ``InvalidInput`` naming the wrong category or score.
    """
    known = tuple(categories)
    if not scores:
        raise InvalidInput("a rating needs at least one score")
    for name, value in scores.items():
        if name not in known:
            raise InvalidInput(f"unknown rating category {name!r} (known: {', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, int) \
                or not MIN_SCORE <= value <= MAX_SCORE:
            raise InvalidInput(f"score {value!r} for {name!r} must be {MIN_SCORE} to {MAX_SCORE}")
    return dict(scores)


def parties(interaction: Interaction, direction: Direction) -> tuple[str, str]:
    """(rater, ratee) of ``interaction`` in ``direction``."""
    if direction is Direction.OF_AGENT:
        return interaction.number, interaction.agent_id
    return interaction.agent_id, interaction.number


def authorize(interaction: Interaction, direction: Direction, rater: str) -> str:
    """Return the ratee when ``rater`` took part in ``interaction`` on the rating side of
    ``direction``; raise ``NotYourRating`` otherwise (also for an anonymous customer)."""
    own, ratee = parties(interaction, direction)
    if not own or rater != own:
        side = "customer" if direction is Direction.OF_AGENT else "agent"
        raise NotYourRating(f"{rater or 'an anonymous caller'} was not the {side} of task "
                            f"{interaction.task_id}: only that {side} may rate it")
    return ratee


def summarize(ratee: str, raw: Mapping[str, str], categories: Iterable[str],
              prior: Shrinkage) -> Summary:
    """A ``Summary`` from stored sums: ``n:<cat>``/``sum:<cat>`` fields, ``n:*``/``sum:*``
    for every score, ``ratings`` for the records.

    The overall mean is shrunk per *rating* (one rating of three 5s weighs like one rating),
    so it agrees with the categories and does not grow with the number of categories.
    """

    def score(name: str, weight: int | None = None) -> Score:
        count = int(raw.get(f"n:{name}", "0") or 0)
        total = float(raw.get(f"sum:{name}", "0") or 0)
        mean = total / count if count else None
        if weight is None or mean is None:
            return Score(count, mean, prior.mean_of(total, count))
        return Score(count, mean, prior.mean_of(mean * weight, weight))

    ratings = int(raw.get("ratings", "0") or 0)
    cats = MappingProxyType({name: score(name) for name in categories})
    return Summary(ratee, ratings, cats, score("*", ratings))


def best_first(summaries: Iterable[Summary]) -> list[Summary]:
    """Highest shrunk overall first; unrated ones last; ties by more ratings, then by id."""
    return sorted(summaries, key=lambda s: (s.overall.shrunk is None,
                                            -(s.overall.shrunk or 0.0), -s.ratings, s.ratee))


def spoken(value: float) -> tuple[int, int]:
    """A score as the two digits a caller hears: 4.84 → (4, 8) ("4 point 8")."""
    tenths = round(value * 10)
    return tenths // 10, tenths % 10


AGAIN = "again"  # an invalid key on the first try: say so and ask the same question again
SKIP_KEYS = frozenset({"#", "0"})


def score_key(key: str | None, attempt: int) -> int | str | None:
    """What a key pressed for one rating question means: a score 1–5, ``None`` to skip the
    question (no key, ``#`` or ``0``, or a second invalid key), or ``AGAIN``."""
    if key is None or key in SKIP_KEYS:
        return None
    if key.isdigit() and MIN_SCORE <= int(key) <= MAX_SCORE:
        return int(key)
    return AGAIN if attempt <= 1 else None
