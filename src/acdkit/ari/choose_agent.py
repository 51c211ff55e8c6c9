"""Choose your agent: after the IVR, the caller hears up to ``ratings.choose_agent`` logged-in
agents of the skill, best-rated first ("agent 2, rated 4 point 8, press 1"), and may pick one.
The choice becomes the task's preferred agent for ``ratings.preferred_wait`` seconds; after
that anyone may take the call, and the caller is told so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from acdkit.ari.session import Session
from acdkit.ari.survey import ask_key
from acdkit.config import RatingSettings
from acdkit.core.prompts import NO_CHOICE, agent_menu, prompt, say_digits
from acdkit.core.ratings import Summary
from acdkit.ports import Clock
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChooseAgent:
    """What the choice of an agent uses."""

    pool: Pool
    clock: Clock
    ratings: RatingStore
    settings: RatingSettings  # [ratings]


@dataclass(frozen=True)
class Choice:
    agent_id: str
    until: float  # preferred until: then any eligible agent may take the task


async def offered(ctx: ChooseAgent, skill: str) -> list[Summary]:
    """The logged-in agents having ``skill``, best-rated first, at most ``choose_agent`` (9)."""
    limit = min(ctx.settings.choose_agent, 9)
    if limit <= 0:
        return []
    ids = [a.id for a in await ctx.pool.list_agents() if a.logged_in and skill in a.skills]
    return (await ctx.ratings.summaries(ratees=ids))[:limit] if ids else []


async def choose_agent(ctx: ChooseAgent, session: Session, skill: str) -> Choice | None:
    """Offer the agents of ``skill``; the caller's choice, or None (no key, 0, #, no agent)."""
    agents = await offered(ctx, skill)
    if not agents:
        return None
    for _ in (1, 2):
        key = await ask_key(session, agent_menu(agents), ctx.settings.key_timeout)
        if key is None or key in NO_CHOICE:
            return None
        if key.isdigit() and 1 <= int(key) <= len(agents):
            return await _chosen(ctx, session, agents[int(key) - 1].ratee)
        await session.play([prompt("invalid")])
    return None


async def _chosen(ctx: ChooseAgent, session: Session, agent_id: str) -> Choice:
    wait = ctx.settings.preferred_wait
    log.info("channel %s chose agent %s", session.channel_id, agent_id)
    session.clear_digits()
    await session.play([prompt("rate-you-chose"), *say_digits(agent_id),
                        prompt("rate-wait-for"), f"number:{round(wait)}", "sound:seconds",
                        prompt("rate-then-any")])
    return Choice(agent_id, ctx.clock.now() + wait)


async def rating_inputs(ctx: ChooseAgent, session: Session, skill: str) -> dict[str, Any]:
    """The task fields ratings give a new call: the chosen agent (with its deadline) and the
    customer's rating from agents, which the priority rules weigh."""
    choice = await choose_agent(ctx, session, skill)
    inputs: dict[str, Any] = {
        "customer_rating": await ctx.ratings.customer_score(session.caller_number)}
    if choice is not None:
        inputs.update(preferred_agent=choice.agent_id, preferred_until=choice.until)
    return inputs
