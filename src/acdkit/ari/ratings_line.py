"""The ratings line (Stasis ``ratings,<entry>``, lab extension 110): a customer, known by the
calling number, hears the agents who served it, newest first, and adds, changes or deletes its
own rating of each; an agent calling from its own phone does the same for its customers.
With ``ratings.customer_pin`` on, a customer first keys the PIN set by `acdkit ratings pin`.

Per interaction: 1 = rate (or change), 2 = delete, 3 or no key = next, # = finish.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from acdkit.ari.agents import _endpoint_of
from acdkit.ari.control import AriControl
from acdkit.ari.session import Session
from acdkit.ari.survey import Survey, ask_key, ask_scores, rate_and_thank
from acdkit.config import RatingSettings
from acdkit.core.errors import AcdError, NoSuchRating
from acdkit.core.pins import PinOutcome, PinPolicy
from acdkit.core.prompts import prompt, say_digits, say_score
from acdkit.core.ratings import Direction, Interaction, Rating
from acdkit.ports import Clock
from acdkit.store.pins import verify_customer_pin
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore

log = logging.getLogger(__name__)
LATEST = 9  # interactions offered per call


@dataclass(frozen=True)
class RatingsLine:
    """What the ratings line uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    ratings: RatingStore
    settings: RatingSettings  # [ratings]
    pins: PinPolicy
    survey: Survey  # rating and thanking, as after a call


async def ratings_line(ctx: RatingsLine, session: Session) -> None:
    """Run one call to the ratings line from answer to hang-up."""
    await ctx.control.answer(session.channel_id)
    rater, direction = await _caller(ctx, session)
    if direction is Direction.OF_CUSTOMER or await _pin_ok(ctx, session, rater):
        await _offer(ctx, session, rater, direction)
    await session.play([prompt("goodbye")])
    await ctx.control.hangup(session.channel_id)


async def _offer(ctx: RatingsLine, session: Session, rater: str, direction: Direction) -> None:
    served = await _served(ctx, rater, direction)
    if not served:
        await session.play([prompt("rate-line-none")])
        return
    await session.play([prompt("rate-line-welcome")])
    for interaction in served:
        if not await _manage(ctx, session, rater, direction, interaction):
            break


async def _pin_ok(ctx: RatingsLine, session: Session, number: str) -> bool:
    """With ``ratings.customer_pin`` on, the customer keys the PIN set for its number by
    `acdkit ratings pin` (a second try after a wrong one); True when it may go on."""
    if not ctx.settings.customer_pin:
        return True
    pin_hash = await ctx.ratings.pin_hash(number)
    if pin_hash is None:
        log.info("ratings line: refused %r: no PIN set for it", number)
        await session.play([prompt("rate-pin-none")])
        return False
    for _ in range(2):
        await session.play([prompt("rate-pin-enter")], interruptible=True)
        keyed = await session.read_digits(max_digits=12, timeout=ctx.settings.key_timeout)
        checked = await verify_customer_pin(ctx.pool, number, keyed, pin_hash, ctx.pins)
        if checked is PinOutcome.OK:
            return True
        log.info("ratings line: %s PIN for %r", checked.value, number)
        await session.play([prompt("rate-pin-wrong")])
        if checked is PinOutcome.LOCKED:
            break
    return False


async def _caller(ctx: RatingsLine, session: Session) -> tuple[str, Direction]:
    """An agent when the call comes from an agent's own phone, else the calling number."""
    endpoint = _endpoint_of(session)
    if endpoint:
        for agent in await ctx.pool.list_agents():
            if agent.reach == endpoint:
                return agent.id, Direction.OF_CUSTOMER
    return session.caller_number, Direction.OF_AGENT


async def _served(ctx: RatingsLine, rater: str, direction: Direction) -> list[Interaction]:
    try:
        if direction is Direction.OF_CUSTOMER:
            return await ctx.ratings.served(agent_id=rater, limit=LATEST)
        return await ctx.ratings.served(number=rater, limit=LATEST)
    except AcdError as exc:  # an anonymous or odd calling number has nothing to manage
        log.info("ratings line: nothing for %r: %s", rater, exc)
        return []


def _announce(interaction: Interaction, direction: Direction,
              current: Rating | None) -> list[str]:
    if direction is Direction.OF_AGENT:
        who = [prompt("rate-agent"), *say_digits(interaction.agent_id)]
    else:
        who = [prompt("rate-line-customer"), *say_digits(interaction.number, 4)]
    mine = [prompt("rate-not-rated")] if current is None else [
        prompt("rate-your-rating"),
        *say_score(sum(current.scores.values()) / len(current.scores))[1:]]
    return [prompt("rate-line-item"), *who, *mine, prompt("rate-line-options")]


async def _manage(ctx: RatingsLine, session: Session, rater: str, direction: Direction,
                  interaction: Interaction) -> bool:
    """Offer one interaction until the caller moves on; False when the caller is finished."""
    invalid = 0
    while invalid < 2:
        current = await ctx.ratings.get(interaction.task_id, direction)
        key = await ask_key(session, _announce(interaction, direction, current),
                            ctx.settings.key_timeout)
        if key == "1":
            scores = await ask_scores(session, ctx.ratings.allowed(direction),
                                      ctx.settings.key_timeout)
            await rate_and_thank(ctx.survey, session, interaction.task_id, rater, scores)
        elif key == "2":
            await _delete(ctx, session, rater, interaction)
        elif key == "#":
            return False
        elif key is None or key == "3":
            return True
        else:
            invalid += 1
            await session.play([prompt("invalid")])
    return True


async def _delete(ctx: RatingsLine, session: Session, rater: str, interaction: Interaction) -> None:
    try:
        await ctx.ratings.delete(task_id=interaction.task_id, rater=rater, now=ctx.clock.now())
    except NoSuchRating:
        await session.play([prompt("rate-nothing-to-delete")])
        return
    log.info("task %s: rating by %s deleted", interaction.task_id, rater)
    await session.play([prompt("rate-deleted")])
