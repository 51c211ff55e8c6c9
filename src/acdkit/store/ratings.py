"""Ratings in Redis: served interactions, one rating per interaction and direction, and
aggregates kept exact by ``lua/rating.lua`` (it subtracts the old value and adds the new one
in one step, so concurrent raters never need a recount).

Keys (under the pool's ``base``, so they share its hash tag)::

    served:<task>               hash   agent, number, skill, at: the interaction that happened
    served:agent:<agent>        zset   task ids the agent served, score = served at
    served:number:<number>      zset   task ids the customer was served in
    rating:<task>:<direction>   hash   rater, ratee, at, s:<category> = score
    surveyed:<task>             string the interaction's post-call survey was taken (once)
    ragg:<direction>:<ratee>    hash   ratings, n:<cat>, sum:<cat>, n:*, sum:* (every score)
    ragg:<direction>            set    ratees that were ever rated (listing)
    rated:<direction>:<ratee>   zset   task ids of the ratee's ratings, score = rated at
    declines                    hash   agent id → calls declined from the whisper
    pins                        hash   customer number → hash of its ratings-line PIN
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import cast

from acdkit.config import RatingSettings
from acdkit.core.errors import InvalidInput, NoSuchInteraction, NoSuchRating, NotYourRating
from acdkit.core.ratings import (
    DEFAULT_CATEGORIES,
    OVERALL,
    Direction,
    Interaction,
    Rating,
    Shrinkage,
    Summary,
    authorize,
    best_first,
    check_scores,
    parse_categories,
    summarize,
)
from acdkit.store.codec import encode_float
from acdkit.store.connection import guarded
from acdkit.store.keys import check_id
from acdkit.store.pool import Pool
from acdkit.store.scripts import source

_NUMBER = re.compile(r"^\+?[0-9]{1,20}$")


def check_party_number(value: str) -> str:
    """A customer number as it may go into a key: digits with an optional ``+``."""
    if not isinstance(value, str) or not _NUMBER.fullmatch(value):
        raise InvalidInput(f"customer number {value!r} must be 1-20 digits with an optional +")
    return value


class RatingStore:
    """Ratings of one pool; ``categories`` are the questions a customer answers about an agent."""

    def __init__(self, pool: Pool, categories: tuple[str, ...] = DEFAULT_CATEGORIES,
                 prior: Shrinkage | None = None) -> None:
        self.pool = pool
        self.redis = pool.redis
        self.base = pool.keys.base
        self.categories = categories
        self.prior = prior or Shrinkage()
        self._script = pool.redis.register_script(source("rating"))

    # -- interactions ----------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return self.base + ":".join(parts)

    @guarded
    async def record_served(self, interaction: Interaction) -> None:
        """Remember that ``interaction`` happened, so both sides may rate it."""
        task_id = check_id(interaction.task_id, "task id")
        agent_id = check_id(interaction.agent_id, "agent id")
        at = encode_float(interaction.served_at)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key("served", task_id), mapping={
            "agent": agent_id, "number": interaction.number, "skill": interaction.skill,
            "at": at})
        pipe.zadd(self._key("served", "agent", agent_id), {task_id: interaction.served_at})
        if interaction.number:
            number = check_party_number(interaction.number)
            pipe.zadd(self._key("served", "number", number), {task_id: interaction.served_at})
        await pipe.execute()

    @guarded
    async def interaction(self, task_id: str) -> Interaction:
        """The served interaction of ``task_id``; raise ``NoSuchInteraction``."""
        raw = cast(dict[str, str], await self.redis.hgetall(self._key("served",
                                                                      check_id(task_id))))
        if not raw:
            raise NoSuchInteraction(f"no served interaction {task_id!r}: only a call that an "
                                    "agent took can be rated")
        return Interaction(task_id, raw["agent"], raw.get("number", ""), raw.get("skill", ""),
                           float(raw.get("at", "0")))

    @guarded
    async def claim_survey(self, task_id: str) -> bool:
        """True the first time the post-call survey of interaction ``task_id`` is claimed,
        False ever after: a caller answers one survey per call, however often it asks."""
        key = self._key("surveyed", check_id(task_id))
        return bool(await self.redis.set(key, "1", nx=True))

    @guarded
    async def served(self, *, agent_id: str = "", number: str = "",
                     limit: int = 20) -> list[Interaction]:
        """The latest interactions of an agent or of a customer number, newest first."""
        key = self._key("served", "agent", check_id(agent_id, "agent id")) if agent_id else \
            self._key("served", "number", check_party_number(number))
        ids = cast(list[str], await self.redis.zrevrange(key, 0, limit - 1))
        return [await self.interaction(task_id) for task_id in ids]

    # -- ratings ---------------------------------------------------------------------------

    async def resolve(self, task_id: str, rater: str, ratee: str | None) -> tuple[
            Interaction, Direction, str]:
        found = await self.interaction(task_id)
        for direction in Direction:
            try:
                who = authorize(found, direction, rater)
            except NotYourRating:
                continue
            if ratee is None or ratee == who:
                return found, direction, who
        raise NotYourRating(f"{rater or 'an anonymous caller'} cannot rate "
                            f"{ratee or 'anyone'} for task {task_id}: only the customer and "
                            "the agent of that interaction rate each other")

    def allowed(self, direction: Direction) -> tuple[str, ...]:
        return self.categories if direction is Direction.OF_AGENT else (OVERALL,)

    @guarded
    async def rate(self, *, task_id: str, rater: str, ratee: str | None = None,
                   scores: Mapping[str, int], now: float) -> Rating:
        """Add or change ``rater``'s rating of the other side of interaction ``task_id``.

        A customer (by number) gives scores per category; an agent gives ``overall``.
        Raises ``NoSuchInteraction``, ``NotYourRating`` (not a party, or a wrong ratee),
        ``InvalidInput`` (unknown category, score outside 1–5).
        """
        found, direction, who = await self.resolve(task_id, rater, ratee)
        checked = check_scores(scores, self.allowed(direction))
        pairs = [item for name, value in sorted(checked.items()) for item in (name, str(value))]
        await self._run(task_id, direction, rater, who, "set", now, pairs)
        return Rating(found.task_id, direction, rater, who, checked, now)

    @guarded
    async def delete(self, *, task_id: str, rater: str, now: float) -> None:
        """Delete ``rater``'s own rating of interaction ``task_id``.

        Raises ``NoSuchInteraction``, ``NotYourRating``, ``NoSuchRating`` (none to delete).
        """
        _, direction, who = await self.resolve(task_id, rater, None)
        if await self._run(task_id, direction, rater, who, "delete", now, []) == "missing":
            raise NoSuchRating(f"{rater} has no rating of task {task_id} to delete")

    async def _run(self, task_id: str, direction: Direction, rater: str, ratee: str, op: str,
                   now: float, pairs: Sequence[str]) -> str:
        args = self.pool._argv(now, task_id, direction, rater, ratee, op, *pairs)
        outcome = cast(str, await self._script(keys=[self._key("rating", task_id, direction)],
                                               args=args))
        if outcome == "not_yours":
            raise NotYourRating(f"the rating of task {task_id} belongs to someone else")
        return outcome

    @guarded
    async def get(self, task_id: str, direction: Direction) -> Rating | None:
        """The rating of interaction ``task_id`` in ``direction``, if any."""
        raw = cast(dict[str, str], await self.redis.hgetall(
            self._key("rating", check_id(task_id), direction)))
        if not raw:
            return None
        scores = {k[2:]: int(v) for k, v in raw.items() if k.startswith("s:")}
        return Rating(task_id, direction, raw["rater"], raw["ratee"], scores,
                      float(raw.get("at", "0")))

    @guarded
    async def ratings_of(self, direction: Direction, ratee: str,
                         limit: int = 50) -> list[Rating]:
        """The latest ratings of ``ratee``, newest first."""
        ids = cast(list[str], await self.redis.zrevrange(
            self._key("rated", direction, ratee), 0, limit - 1))
        found = [await self.get(task_id, direction) for task_id in ids]
        return [rating for rating in found if rating is not None]

    # -- aggregates ------------------------------------------------------------------------

    async def _summary(self, direction: Direction, ratee: str) -> Summary:
        raw = cast(dict[str, str], await self.redis.hgetall(self._key("ragg", direction, ratee)))
        return summarize(ratee, raw, self.allowed(direction), self.prior)

    @guarded
    async def agent_summary(self, agent_id: str) -> Summary:
        """Counts, raw and shrunk means per category and overall for ``agent_id``."""
        return await self._summary(Direction.OF_AGENT, check_id(agent_id, "agent id"))

    @guarded
    async def customer_summary(self, number: str) -> Summary:
        return await self._summary(Direction.OF_CUSTOMER, check_party_number(number))

    async def customer_score(self, number: str) -> float | None:
        """The customer's shrunk mean score from agents (None: never rated, or no number)."""
        if not number or not _NUMBER.fullmatch(number):
            return None
        return (await self.customer_summary(number)).overall.shrunk

    @guarded
    async def summaries(self, direction: Direction = Direction.OF_AGENT,
                        ratees: Sequence[str] | None = None) -> list[Summary]:
        """Summaries of ``ratees`` (default: everyone ever rated), best first."""
        names = ratees if ratees is not None else sorted(cast(set[str], await self.redis.smembers(
            self._key("ragg", direction))))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._key("ragg", direction, name))
        allowed = self.allowed(direction)
        return best_first([summarize(name, raw, allowed, self.prior)
                           for name, raw in zip(names, await pipe.execute(), strict=True)])

    # -- declines --------------------------------------------------------------------------

    @guarded
    async def count_decline(self, agent_id: str, task_id: str, now: float) -> int:
        """Count a call ``agent_id`` declined from the whisper (and audit it); return the total."""
        total = int(await self.redis.hincrby(self._key("declines"), check_id(agent_id), 1))
        await self.pool.audit.append(agent_id, "declined", kind="agent", now=now, task=task_id)
        return total

    @guarded
    async def declines(self) -> dict[str, int]:
        raw = cast(dict[str, str], await self.redis.hgetall(self._key("declines")))
        return {agent: int(count) for agent, count in raw.items()}


    # -- customers' PINs for the ratings line ----------------------------------------------

    @guarded
    async def set_pin(self, number: str, pin_hash: str | None) -> None:
        """Keep the hash of ``number``'s ratings-line PIN (None: remove it)."""
        key, number = self._key("pins"), check_party_number(number)
        if pin_hash is None:
            await self.redis.hdel(key, number)
        else:
            await self.redis.hset(key, number, pin_hash)

    @guarded
    async def pin_hash(self, number: str) -> str | None:
        """The hash of ``number``'s PIN, or None when none is set (or no valid number)."""
        if not _NUMBER.fullmatch(number or ""):
            return None
        return cast(str | None, await self.redis.hget(self._key("pins"), number))


def rating_store(pool: Pool, settings: RatingSettings) -> RatingStore:
    """The ratings of ``pool`` with the categories and prior of the ``[ratings]`` settings."""
    return RatingStore(pool, parse_categories(settings.categories),
                       Shrinkage(settings.prior_mean, settings.prior_weight))
