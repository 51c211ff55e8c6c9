"""Ratings around a call: the served interaction is recorded when agent and customer are
bridged; the caller rates the agent by DTMF after the agent hung up (``ratings.survey``); the
agent rates the customer 1–5 after the customer hung up (``ratings.agent_prompt``); the
whisper says the customer's rating and ``*`` declines the call (``ratings.decline``).

Every question is skippable (no key, ``#`` or ``0``); an invalid key is re-prompted once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from acdkit.ari.calls import Call
from acdkit.ari.session import ChannelGone, Session
from acdkit.core.agents import Agent, AgentEvent, AgentState
from acdkit.core.errors import AcdError, InvalidTransition, NotFound
from acdkit.core.prompts import prompt, question, say_score
from acdkit.core.ratings import AGAIN, OVERALL, Interaction, score_key
from acdkit.core.tasks import Task, TaskEvent

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)


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


async def record_served(app: StasisApp, agent: Agent, task: Task) -> None:
    """Remember that ``agent`` served ``task``'s customer, so both may rate it."""
    try:
        await app.ratings.record_served(Interaction(task.id, agent.id, task.number, task.skill,
                                                    app.clock.now()))
    except AcdError as exc:  # a number that cannot be rated must not break the call
        log.warning("task %s: interaction not recorded: %s", task.id, exc)


async def rate_and_thank(app: StasisApp, session: Session, task_id: str, rater: str,
                         scores: dict[str, int]) -> None:
    if not scores:
        return
    try:
        await app.ratings.rate(task_id=task_id, rater=rater, scores=scores, now=app.clock.now())
    except AcdError as exc:
        log.warning("task %s: rating by %s refused: %s", task_id, rater, exc)
        return
    log.info("task %s rated by %s: %s", task_id, rater, scores)
    await session.play([prompt("rate-thanks")])


async def complete(app: StasisApp, task_id: str, outcome: str) -> None:
    try:
        await app.pool.move_task(task_id, TaskEvent.COMPLETE, app.clock.now(), outcome=outcome)
    except (InvalidTransition, NotFound) as exc:
        log.info("task %s: not completed: %s", task_id, exc)


# -- the caller's survey -----------------------------------------------------------------


async def agent_left(app: StasisApp, call: Call) -> bool:
    """A per-call agent hung up while the caller is still on the line. With the survey on,
    end the task, ask the caller, then hang up; True when the survey took the caller over."""
    rater = await caller_rater(app, call)
    if not rater or call.agent_id is None:
        return False
    if call.bridge_id:
        await app.control.destroy_bridge(call.bridge_id)
    await app.connector.end(call.task_id, call.agent_id, TaskEvent.COMPLETE, "agent hung up")
    await survey_caller(app, call, rater)
    return True


async def caller_rater(app: StasisApp, call: Call) -> str:
    """Who rates in the caller's survey: "" when the survey is off or nobody may rate."""
    if not app.settings.ratings.survey or call.customer.gone or call.agent_id is None:
        return ""
    try:  # the rater is the customer of the call (a dialled-back leg shows our caller id)
        return (await app.ratings.interaction(call.task_id)).number
    except AcdError:
        return ""


async def survey_caller(app: StasisApp, call: Call, rater: str) -> None:
    """The caller, out of the conversation, answers one question per category, then is hung
    up; the task is already ended."""
    customer = call.customer
    try:
        customer.clear_digits()
        await customer.play([prompt("rate-survey-intro")])
        scores = await ask_scores(customer, app.ratings.categories,
                                  app.settings.ratings.key_timeout)
        await rate_and_thank(app, customer, call.task_id, rater, scores)
        await customer.play([prompt("goodbye")])
    except ChannelGone:
        return
    await app.control.hangup(customer.channel_id)


# -- the agent's rating of the customer --------------------------------------------------


async def customer_left(app: StasisApp, call: Call, task: Task) -> bool:
    """The customer hung up an active call. With the agent prompt on, the agent rates the
    customer 1–5 before it is free for the next task; True when that took the agent over."""
    agent_id = call.agent_id
    if not app.settings.ratings.agent_prompt or not task.number or agent_id is None:
        return False
    line = app.connector.lines.get(agent_id)
    leg = line.session if line else app.sessions.get(call.agent_leg or "")
    if leg is None or leg.gone:
        return False
    if line is None and call.bridge_id:
        await app.control.destroy_bridge(call.bridge_id)
    await complete(app, task.id, "customer hung up")
    await agent_rates(app, leg, task, agent_id)
    if line is None:
        await app.control.hangup(leg.channel_id)
    await app.connector.move_agent(agent_id, AgentEvent.END)
    app.after_wrap_up(agent_id)
    return True


async def agent_rates(app: StasisApp, leg: Session, task: Task, agent_id: str) -> None:
    """With the agent prompt on, ask the agent on ``leg`` to rate ``task``'s customer 1–5."""
    if not app.settings.ratings.agent_prompt or not task.number:
        return
    try:
        leg.clear_digits()
        score = await ask_score(leg, question(OVERALL, 1), app.settings.ratings.key_timeout)
        if score is not None:
            await rate_and_thank(app, leg, task.id, agent_id, {OVERALL: score})
    except ChannelGone:
        pass


# -- the whisper -------------------------------------------------------------------------


def whisper_rating(task: Task) -> list[str]:
    """What the whisper adds about the customer: its rating, when it has one."""
    if task.customer_rating is None:
        return []
    return [prompt("rate-customer-is"), *say_score(task.customer_rating)]


async def declined(app: StasisApp, agent: Agent, task: Task, call: Call, leg: Session) -> bool:
    """True when the agent pressed ``*`` during the whisper: the task goes back to the queue
    with its place, the agent to wrap-up, the decline is counted."""
    if not app.settings.ratings.decline or "*" not in leg.digits:
        return False
    leg.clear_digits()
    call.taken.clear()
    call.agent_id = None
    if agent.id not in app.connector.lines:
        call.agent_leg = None
        await app.control.hangup(leg.channel_id)
        app.sessions.close(leg.channel_id)
    now = app.clock.now()
    await app.pool.release(task.id, AgentState.WRAP_UP, now, reason="declined")
    total = await app.ratings.count_decline(agent.id, task.id, now)
    log.info("task %s declined by agent %s (%d declines)", task.id, agent.id, total)
    app.after_wrap_up(agent.id)
    return True
