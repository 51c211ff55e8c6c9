"""Ratings around a call: the served interaction is recorded when agent and customer are
bridged; the caller rates the agent by DTMF after the agent hung up (``ratings.survey``); the
agent rates the customer 1–5 after the customer hung up (``ratings.agent_prompt``); the
whisper says the customer's rating and ``*`` declines the call (``ratings.decline``).

Every question is skippable (no key, ``#`` or ``0``); an invalid key is re-prompted once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from acdkit.ari.calls import Call, Lines
from acdkit.ari.control import AriControl
from acdkit.ari.endings import Endings
from acdkit.ari.session import ChannelGone, Session, Sessions
from acdkit.config import RatingSettings
from acdkit.core.agents import Agent, AgentEvent, AgentState
from acdkit.core.errors import AcdError, InvalidTransition, NotFound
from acdkit.core.prompts import prompt, question, say_score
from acdkit.core.ratings import AGAIN, OVERALL, Interaction, score_key
from acdkit.core.tasks import Task, TaskEvent
from acdkit.ports import Clock
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Survey:
    """What the ratings around a call use."""

    control: AriControl
    pool: Pool
    clock: Clock
    ratings: RatingStore
    settings: RatingSettings  # [ratings]
    sessions: Sessions
    lines: Lines
    endings: Endings


async def ask_key(session: Session, media: Sequence[str], timeout: float) -> str | None:
    """Play ``media`` (a key stops it) and return the first key, or None after ``timeout``."""
    key = await session.play(media, interruptible=True)
    if key is not None:
        return session.digits.pop(0)
    return await session.read_key(timeout)


async def ask_score(session: Session, media: Sequence[str], timeout: float) -> int | None:
    """One rating question: a score 1–5, or None when skipped."""
    for attempt in (1, 2):
        meaning = score_key(await ask_key(session, media, timeout), attempt)
        if meaning != AGAIN:
            return meaning if isinstance(meaning, int) else None
        await session.play([prompt("invalid")])
    return None


async def ask_scores(session: Session, categories: Sequence[str],
                     timeout: float) -> dict[str, int]:
    """One question per category; the skipped ones are left out."""
    scores: dict[str, int] = {}
    for index, category in enumerate(categories, 1):
        score = await ask_score(session, question(category, index), timeout)
        if score is not None:
            scores[category] = score
    return scores


# -- recording what happened -------------------------------------------------------------


async def record_served(ctx: Survey, agent: Agent, task: Task) -> None:
    """Remember that ``agent`` served ``task``'s customer, so both may rate it."""
    try:
        await ctx.ratings.record_served(Interaction(task.id, agent.id, task.number, task.skill,
                                                    ctx.clock.now()))
    except AcdError as exc:  # a number that cannot be rated must not break the call
        log.warning("task %s: interaction not recorded: %s", task.id, exc)


async def rate_and_thank(ctx: Survey, session: Session, task_id: str, rater: str,
                         scores: dict[str, int]) -> None:
    if not scores:
        return
    try:
        await ctx.ratings.rate(task_id=task_id, rater=rater, scores=scores, now=ctx.clock.now())
    except AcdError as exc:
        log.warning("task %s: rating by %s refused: %s", task_id, rater, exc)
        return
    log.info("task %s rated by %s: %s", task_id, rater, scores)
    await session.play([prompt("rate-thanks")])


async def complete(ctx: Survey, task_id: str, outcome: str) -> None:
    try:
        await ctx.pool.move_task(task_id, TaskEvent.COMPLETE, ctx.clock.now(), outcome=outcome)
    except (InvalidTransition, NotFound) as exc:
        log.info("task %s: not completed: %s", task_id, exc)


# -- the caller's survey -----------------------------------------------------------------


async def agent_left(ctx: Survey, call: Call) -> bool:
    """A per-call agent hung up while the caller is still on the line. With the survey on,
    end the task, ask the caller, then hang up; True when the survey took the caller over."""
    rater = await caller_rater(ctx, call)
    if not rater or call.agent_id is None:
        return False
    if call.bridge_id:
        await ctx.control.destroy_bridge(call.bridge_id)
    await ctx.endings.end(call.task_id, call.agent_id, TaskEvent.COMPLETE, "agent hung up",
                          agent=call.agent)
    await survey_caller(ctx, call, rater)
    return True


async def caller_rater(ctx: Survey, call: Call) -> str:
    """Who rates in the caller's survey: "" when the survey is off or nobody may rate."""
    if not ctx.settings.survey or call.customer.gone or call.agent_id is None:
        return ""
    try:  # the rater is the customer of the call (a dialled-back leg shows our caller id)
        return (await ctx.ratings.interaction(call.task_id)).number
    except AcdError:
        return ""


async def survey_caller(ctx: Survey, call: Call, rater: str) -> None:
    """The caller, out of the conversation, answers one question per category, then is hung
    up; the task is already ended."""
    customer = call.customer
    try:
        customer.clear_digits()
        await customer.play([prompt("rate-survey-intro")])
        scores = await ask_scores(customer, ctx.ratings.categories,
                                  ctx.settings.key_timeout)
        await rate_and_thank(ctx, customer, call.task_id, rater, scores)
        await customer.play([prompt("goodbye")])
    except ChannelGone:
        return
    await ctx.control.hangup(customer.channel_id)


# -- the agent's rating of the customer --------------------------------------------------


async def customer_left(ctx: Survey, call: Call, task: Task) -> bool:
    """The customer hung up an active call. With the agent prompt on, the agent rates the
    customer 1–5 before it is free for the next task; True when that took the agent over."""
    agent_id = call.agent_id
    if not ctx.settings.agent_prompt or not task.number or agent_id is None:
        return False
    line = ctx.lines.get(agent_id)
    leg = line.session if line else ctx.sessions.get(call.agent_leg or "")
    if leg is None or leg.gone:
        return False
    if line is None and call.bridge_id:
        await ctx.control.destroy_bridge(call.bridge_id)
    await complete(ctx, task.id, "customer hung up")
    await agent_rates(ctx, leg, task, agent_id)
    if line is None:
        await ctx.control.hangup(leg.channel_id)
    await ctx.endings.move_agent(agent_id, AgentEvent.END)
    ctx.endings.after_wrap_up(agent_id)
    return True


async def agent_rates(ctx: Survey, leg: Session, task: Task, agent_id: str) -> None:
    """With the agent prompt on, ask the agent on ``leg`` to rate ``task``'s customer 1–5."""
    if not ctx.settings.agent_prompt or not task.number:
        return
    try:
        leg.clear_digits()
        score = await ask_score(leg, question(OVERALL, 1), ctx.settings.key_timeout)
        if score is not None:
            await rate_and_thank(ctx, leg, task.id, agent_id, {OVERALL: score})
    except ChannelGone:
        pass


# -- the whisper -------------------------------------------------------------------------


def whisper_rating(task: Task) -> list[str]:
    """What the whisper adds about the customer: its rating, when it has one."""
    if task.customer_rating is None:
        return []
    return [prompt("rate-customer-is"), *say_score(task.customer_rating)]


async def declined(ctx: Survey, agent: Agent, task: Task, call: Call, leg: Session) -> bool:
    """True when the agent pressed ``*`` during the whisper: the task goes back to the queue
    with its place, the agent to wrap-up, the decline is counted."""
    if not ctx.settings.decline or "*" not in leg.digits:
        return False
    leg.clear_digits()
    call.taken.clear()
    call.agent_id = None
    if agent.id not in ctx.lines:
        call.agent_leg = None
        await ctx.control.hangup(leg.channel_id)
        ctx.sessions.close(leg.channel_id)
    now = ctx.clock.now()
    await ctx.pool.release(task.id, AgentState.WRAP_UP, now, reason="declined")
    total = await ctx.ratings.count_decline(agent.id, task.id, now)
    log.info("task %s declined by agent %s (%d declines)", task.id, agent.id, total)
    ctx.endings.after_wrap_up(agent.id)
    return True
