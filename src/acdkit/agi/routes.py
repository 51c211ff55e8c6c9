"""The FastAGI routes of dialplan mode: one small function per route, the route name is the
function name with dashes (``AGI(agi://acdkit:4573/callback-offer?queue=sales)`` runs
``callback_offer``).

Every route ends by setting ``ACDKIT_STATUS`` (``dialplan_vars``); the server sets ``failed``
when a route raises, so the dialplan always has somewhere to go.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from functools import partial

from acdkit import dialplan_vars as dv
from acdkit.agi.context import RouteContext
from acdkit.agi.my_requests import my_requests
from acdkit.agi.offer import Caller, Offer
from acdkit.agi.protocol import AgiRequest, route_function_name
from acdkit.agi.server import Handler
from acdkit.agi.session import AgiChannel
from acdkit.config import Settings
from acdkit.core.callbacks import reference
from acdkit.core.errors import InvalidInput, NoSuchInteraction
from acdkit.core.prompts import NO_CHOICE, agent_menu, prompt, question, say_digits
from acdkit.core.ratings import Interaction, Summary
from acdkit.core.tasks import Task
from acdkit.store.ratings import RatingStore
from acdkit.store.requests import submit_request

log = logging.getLogger(__name__)

_QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MEMBER = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
# Where RECORD FILE writes: Asterisk's stored recordings, which ARI serves
# (GET /recordings/stored/{name}/file), so acdkit needs no disk shared with the PBX.
RECORDINGS = "/var/spool/asterisk/recording"
SURVEY_WAIT, SURVEY_POLLS = 2.0, 10  # seconds a survey waits for AMI's record of its call


Route = Callable[[RouteContext, AgiChannel, AgiRequest], Awaitable[None]]


def queue_param(request: AgiRequest) -> str:
    """The ``queue`` parameter, checked; ``InvalidInput`` when missing or unsafe."""
    queue = request.params.get("queue", "")
    if not _QUEUE.fullmatch(queue):
        raise InvalidInput(f"route {request.route}: parameter queue={queue[:64]!r} is not a "
                           "queue name")
    return queue


async def _since(agi: AgiChannel, now: float) -> float:
    """When the caller joined the queue (``ACDKIT_SINCE``, set by the dialplan), else now."""
    raw = await agi.get_variable(dv.SINCE)
    try:
        since = float(raw or "")
    except ValueError:
        return now
    return since if 0 < since <= now else now


async def callback_offer(ctx: RouteContext, agi: AgiChannel, request: AgiRequest) -> None:
    """The overflow offer: ``stored`` (callback booked, ACDKIT_TASK_ID set) or ``wait``."""
    queue = queue_param(request)
    since = await _since(agi, ctx.clock.now())
    caller = Caller(queue, request.caller_number, since, request.channel)
    offer = _offer(ctx)
    if ctx.settings.overflow.voice_requests and ctx.jobs is not None:  # 3 = voice request
        offer.voice = partial(_record_request, ctx, request.unique_id)
    await _stored(agi, await offer.run(agi, caller))


def _offer(ctx: RouteContext) -> Offer:
    return Offer(ctx.settings, ctx.numbers, ctx.callbacks, ctx.clock)


async def _stored(agi: AgiChannel, task: Task | None) -> None:
    """``stored`` with ACDKIT_TASK_ID, or ``wait`` when nothing was stored."""
    if task is None:
        await agi.set_variable(dv.STATUS, dv.STATUS_WAIT)
        return
    await agi.set_variable(dv.TASK_ID, task.id)
    await agi.set_variable(dv.STATUS, dv.STATUS_STORED)


async def choose_agent(ctx: RouteContext, agi: AgiChannel, request: AgiRequest) -> None:
    """Choose a free member of ``queue``: ``ACDKIT_AGENT`` = its interface, ``ACDKIT_MEMBER`` =
    its member name, ``chosen``. With ``ratings.choose_agent`` = N > 0 the caller hears up to
    N free members, best-rated first, and picks one by key (the Stasis menu); with 0 it is
    the best-rated free member. ``none``: nobody free, no choice (0, # or no key), AMI off."""
    queue = queue_param(request)
    free = {m.name: m for m in (ctx.members.free(queue) if ctx.members else [])
            if _MEMBER.fullmatch(m.name)}
    ranked = await ctx.ratings.summaries(ratees=sorted(free)) if free else []
    limit = min(ctx.settings.ratings.choose_agent, 9)
    if limit > 0 and ranked:
        name = await _keyed_member(agi, ranked[:limit], ctx.settings.ratings.key_timeout)
    else:
        name = ranked[0].ratee if ranked else None
    if name is None:
        await agi.set_variable(dv.STATUS, dv.STATUS_NONE)
        return
    log.info("AGI choose-agent: %s (%s) for queue %s", name, free[name].interface, queue)
    await agi.set_variable(dv.AGENT, free[name].interface)
    await agi.set_variable(dv.MEMBER, name)
    await agi.set_variable(dv.STATUS, dv.STATUS_CHOSEN)


async def _keyed_member(agi: AgiChannel, ranked: list[Summary], timeout: float) -> str | None:
    """The caller's pick from the menu of ``ranked`` members (key 1..N), or None."""
    for _ in (1, 2):
        key = await agi.ask(agent_menu(ranked), timeout)
        if key is None or key in NO_CHOICE:
            return None
        if key.isdigit() and 1 <= int(key) <= len(ranked):
            name = ranked[int(key) - 1].ratee
            await agi.play([prompt("rate-you-chose"), *say_digits(name)])
            return name
        await agi.play([prompt("invalid")])
    return None


async def survey(ctx: RouteContext, agi: AgiChannel, request: AgiRequest) -> None:
    """After the agent hung up (``Queue()`` option ``c``, or ``Dial()`` option ``g`` after
    choose-agent): the caller rates the member who took the call, one key 1-5 per category;
    ``rated``, or ``none``. Only a call acdkit recorded from AMI (``ami/watcher.py``: the
    caller channel's uniqueid, the member, the caller's number) is rated, by that number,
    once: a FastAGI client cannot invent an interaction (docs/security-policy.md)."""
    number = request.caller_number
    task_id = dv.interaction_id(request.unique_id)
    found = await _recorded(ctx.ratings, task_id)
    refusal = _survey_refusal(found, number)
    if refusal is None and not await ctx.ratings.claim_survey(task_id):
        refusal = "its survey was taken already"
    if refusal is not None or found is None:
        log.info("AGI survey of %s: refused: %s", task_id, refusal)
        await agi.set_variable(dv.STATUS, dv.STATUS_NONE)
        return
    scores: dict[str, int] = {}
    await agi.play([prompt("rate-survey-intro")])
    for index, category in enumerate(ctx.ratings.categories, 1):
        key = await agi.ask(question(category, index), ctx.settings.ratings.key_timeout,
                            keys="12345#")
        if key is not None and key in "12345":
            scores[category] = int(key)
    if not scores:
        await agi.set_variable(dv.STATUS, dv.STATUS_NONE)
        return
    await ctx.ratings.rate(task_id=task_id, rater=number, scores=scores, now=ctx.clock.now())
    await agi.play([prompt("rate-thanks")])
    log.info("AGI survey: %s rated %s %s", number, found.agent_id, scores)
    await agi.set_variable(dv.STATUS, dv.STATUS_RATED)


async def _recorded(ratings: RatingStore, task_id: str) -> Interaction | None:
    """The interaction AMI recorded for ``task_id``, waiting ``SURVEY_WAIT`` seconds for an
    ``AgentComplete`` that races the survey; None when there is none."""
    for _ in range(SURVEY_POLLS):
        try:
            return await ratings.interaction(task_id)
        except NoSuchInteraction:
            await asyncio.sleep(SURVEY_WAIT / SURVEY_POLLS)
    return None


def _survey_refusal(found: Interaction | None, number: str) -> str | None:
    """Why the caller ``number`` may not rate ``found``, or None."""
    if found is None:
        return "no call acdkit recorded (AMI) has that uniqueid"
    if not number.lstrip("+").isdigit() or number != found.number:
        return "the caller is not the customer of that call"
    return None


async def voice_request(ctx: RouteContext, agi: AgiChannel, request: AgiRequest) -> None:
    """The caller leaves a spoken request (RECORD FILE; ``#`` or silence ends it) for the
    queue's skill; it goes through the voice-request pipeline (transcription, work order for
    an agent, answer delivered by a call). ``stored``, or ``wait`` (no number, no audio)."""
    caller = Caller(queue_param(request), request.caller_number, ctx.clock.now(),
                    request.channel)
    task = await _record_request(ctx, request.unique_id, agi, caller)
    await _stored(agi, task)


async def _record_request(ctx: RouteContext, unique_id: str, agi: AgiChannel,
                          caller: Caller) -> Task | None:
    if ctx.jobs is None or ctx.fetch is None:
        raise InvalidInput("voice requests need the job queue and ARI (acdkit agi)")
    number = await _offer(ctx).confirm_number(agi, caller)
    if number is None:
        return None
    limits = ctx.settings.requests
    name = "acdkit-vr-" + dv.interaction_id(unique_id)[4:]
    await agi.play(["sound:acdkit/vr-prompt"])
    await agi.record(f"{RECORDINGS}/{name}", "wav", limits.max_seconds, limits.max_silence)
    audio = await ctx.fetch(name)
    if not audio:
        await agi.play(["sound:acdkit/vr-failed"])
        return None
    task = await submit_request(ctx.pool, ctx.jobs, number=number, skill=caller.queue,
                                audio=audio, fmt="wav", now=ctx.clock.now(),
                                source="agi:voice-request", settings=limits)
    log.info("AGI voice-request: request %s from %s for queue %s (%d bytes of audio)",
             task.id, number, caller.queue, len(audio))
    await agi.play(["sound:acdkit/vr-saved", f"digits:{reference(task.id)}"])
    return task


ROUTES: tuple[Route, ...] = (callback_offer, choose_agent, survey, voice_request, my_requests)


def handlers(ctx: RouteContext, routes: tuple[Route, ...] = ROUTES) -> dict[str, Handler]:
    """Route name → handler bound to ``ctx`` (``callback_offer`` answers ``callback-offer``)."""
    found: dict[str, Handler] = {}
    for route in routes:
        name = route.__name__.replace("_", "-")
        assert route_function_name(name) == route.__name__
        found[name] = partial(route, ctx)
    return found


def served_routes(settings: Settings) -> tuple[Route, ...]:
    """The routes ``settings`` turn on: ``voice-request`` only with ``overflow.voice_requests``.
    A route left out is refused like an unknown one: ACDKIT_STATUS=failed."""
    if settings.overflow.voice_requests:
        return ROUTES
    log.info("FastAGI: voice-request is off (overflow.voice_requests = false)")
    return tuple(route for route in ROUTES if route is not voice_request)
