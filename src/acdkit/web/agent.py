"""The agent page (``/agent``): sign in with id and PIN, change state, see and work the
current task, all through the store functions the phone menus use (docs/pages.md).

- state: ready (``LOGIN`` with the reach, or ``RESUME``), pause with a reason, log out,
  connection mode (``set_mode``, from the next task: ``acdkit agents mode``);
- the task held now, or the last one held (from the agent's audit stream), so the agent can
  rate its customer, book a follow-up or answer a voice request after the call;
- the wrap-up countdown ticks in the browser from ``data-until``.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from acdkit.core.agents import Agent, AgentEvent, AgentMode, AgentState, set_mode
from acdkit.core.errors import AcdError, InvalidInput
from acdkit.core.pins import PinOutcome
from acdkit.core.ratings import OVERALL
from acdkit.core.tasks import Task, TaskKind
from acdkit.policies import pin_policy, reach_policy
from acdkit.services.reach import check_agent_reach
from acdkit.store.outbound import add_follow_up
from acdkit.store.requests import store_reply
from acdkit.web import auth
from acdkit.web.context import Web, of
from acdkit.web.events import stream

REASON = re.compile(r"^[A-Za-z0-9 _-]{1,32}$")
PAUSE_REASONS = ("break", "lunch", "training", "meeting", "coaching")
MAX_ANSWER = 2_000
FOLLOW_UP_HOURS = (1, 4, 24, 72)


# -- sign-in -------------------------------------------------------------------------------


async def sign_in_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    w = of(request)
    session = await w.sessions.get(request.cookies.get(auth.COOKIE))
    if session is not None and session.role == auth.AGENT and not error:
        raise web.HTTPSeeOther("/agent/")
    return auth.sign_in_form(request, w.secure, "/agent/login", "Agent id", "PIN", False,
                             error, status)


async def sign_in(request: web.Request) -> web.Response:
    w = of(request)
    form = await request.post()
    if not auth.same(request.cookies.get(auth.PRE_COOKIE, ""), str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="the form expired or came from another site: reload")
    agent_id, pin = str(form.get("who", ""))[:64], str(form.get("secret", ""))[:64]
    address = auth.client_address(request)
    if await w.limits.refused(agent_id, address):
        return await sign_in_page(request, "Too many failed sign-ins: wait a few minutes.", 429)
    agent, checked = await auth.check_agent(w.pool, agent_id, pin, pin_policy(w.settings))
    if agent is None:
        await w.limits.failed(agent_id, address)
        if checked is PinOutcome.LOCKED:
            return await sign_in_page(request, "Too many wrong PINs for this agent id: wait "
                                      "a few minutes or ask a supervisor.", 429)
        return await sign_in_page(request, "Wrong agent id or PIN.", 401)
    await w.limits.succeeded(agent_id)
    await auth.open_session(w.sessions, auth.AGENT, agent.id, "/agent/",
                            secure=w.secure, ttl=w.settings.web.session_ttl)


async def _session(request: web.Request) -> auth.Session:
    return await auth.session_for(request, of(request).sessions, auth.AGENT, "/agent")


# -- what the page shows -------------------------------------------------------------------


async def last_task(w: Web, agent: Agent) -> Task | None:
    """The task the agent holds, else the last one it held (its audit stream says which)."""
    if agent.task_id:
        return await w.pool.get_task(agent.task_id)
    for entry in await w.pool.audit.latest(agent.id, "agent", count=20):
        task_id = entry.fields.get("task")
        if task_id:
            return await w.pool.get_task(task_id)
    return None


async def task_view(w: Web, task: Task) -> dict[str, Any]:
    history = await w.pool.audit.history(task.id)
    connected = next((e.ts for e in history if e.event == "connect"), None)
    view: dict[str, Any] = {
        "task": task, "history": history[-12:],
        "waited": (connected or w.clock.now()) - task.enqueued_at,
        "rating": task.customer_rating if task.customer_rating is not None
        else await w.ratings.customer_score(task.number),
        "attempts": await w.callbacks.attempts(task.id)
        if task.kind is TaskKind.CALLBACK else [],
        "request": await w.requests.get(task.id)
        if task.kind is TaskKind.VOICE_REQUEST else None}
    return view


async def panel(request: web.Request, agent_id: str, csrf: str) -> str:
    w = of(request)
    agent = await w.pool.get_agent(agent_id)
    if agent is None:
        return "<p>This agent no longer exists.</p>"
    task = await last_task(w, agent)
    context = {"agent": agent, "csrf": csrf, "reasons": PAUSE_REASONS,
               "modes": [m.value for m in AgentMode], "hours": FOLLOW_UP_HOURS,
               "current": task is not None and task.id == agent.task_id,
               "t": await task_view(w, task) if task is not None else None,
               "wrap_until": agent.state_since + w.settings.agents.wrap_up
               if agent.state is AgentState.WRAP_UP else None}
    return aiohttp_jinja2.render_string("_agent.html", request, context)


async def page(request: web.Request) -> web.Response:
    session = await _session(request)
    html = await panel(request, session.who, session.csrf)
    return aiohttp_jinja2.render_template("agent.html", request, {
        "panel": html, "who": session.who, "csrf": session.csrf,
        "note": request.query.get("note", "")[:200]})


async def updates(request: web.Request) -> web.StreamResponse:
    session = await _session(request)
    w = of(request)
    own = {f"agent:{session.who}"}

    async def render(changed: set[str]) -> str | None:
        agent = await w.pool.get_agent(session.who)
        mine = own | ({f"task:{agent.task_id}"} if agent and agent.task_id else set())
        if "*" not in changed and not (changed & mine):
            return None
        return await panel(request, session.who, session.csrf)

    return await stream(request, w.hub, "agent", render)


# -- what the agent does -------------------------------------------------------------------


async def act(request: web.Request) -> web.Response:
    """One POST per action; errors come back as a note on the page (nothing is lost)."""
    session = await _session(request)
    form = await request.post()
    auth.check_csrf(session, str(form.get("csrf", "")))
    w = of(request)
    action = request.match_info["action"]
    try:
        note = await ACTIONS[action](w, session.who, {k: str(v) for k, v in form.items()})
    except AcdError as exc:
        note = f"Not done: {exc}"
    w.hub.publish({f"agent:{session.who}"})
    raise web.HTTPSeeOther(URL("/agent/").with_query(note=note[:120]) if note else "/agent/")


async def _agent(w: Web, agent_id: str) -> Agent:
    agent = await w.pool.get_agent(agent_id)
    if agent is None:
        raise InvalidInput(f"no agent {agent_id!r}")
    return agent


async def ready(w: Web, agent_id: str, form: dict[str, str]) -> str:
    agent = await _agent(w, agent_id)
    now = w.clock.now()
    if agent.state is AgentState.LOGGED_OUT:
        reach = await check_agent_reach(w.pool, form.get("reach", "").strip() or agent.reach,
                                        reach_policy(w.settings, w.policy))
        await w.pool.move_agent(agent_id, AgentEvent.LOGIN, now, reach=reach)
    else:
        await w.pool.move_agent(agent_id, AgentEvent.RESUME, now)
    return "Ready."


async def pause(w: Web, agent_id: str, form: dict[str, str]) -> str:
    reason = form.get("reason", "").strip() or "break"
    if not REASON.fullmatch(reason):
        raise InvalidInput("a pause reason is 1-32 letters, digits, spaces, _ or -")
    await w.pool.move_agent(agent_id, AgentEvent.PAUSE, w.clock.now(), reason=reason)
    return f"Paused: {reason}."


async def log_out(w: Web, agent_id: str, form: dict[str, str]) -> str:
    await w.pool.move_agent(agent_id, AgentEvent.LOGOUT, w.clock.now())
    return "Logged out of the queues (still signed in to this page)."


async def mode(w: Web, agent_id: str, form: dict[str, str]) -> str:
    try:
        wanted = AgentMode(form.get("mode", ""))
    except ValueError:
        raise InvalidInput("mode is per_call or persistent") from None
    agent = await _agent(w, agent_id)
    await w.pool.save_agent(set_mode(agent, wanted))
    return f"Mode {wanted.value}, from the next task."


async def _held(w: Web, agent_id: str, task_id: str) -> Task:
    """The task the form names, if it is the agent's current or last task."""
    task = await last_task(w, await _agent(w, agent_id))
    if task is None or task.id != task_id:
        raise InvalidInput("that task is no longer yours to work on")
    return task


async def rate(w: Web, agent_id: str, form: dict[str, str]) -> str:
    task = await _held(w, agent_id, form.get("task", ""))
    score = form.get("score", "")
    if score not in {"1", "2", "3", "4", "5"}:
        raise InvalidInput("a score is 1 to 5")
    await w.ratings.rate(task_id=task.id, rater=agent_id, scores={OVERALL: int(score)},
                         now=w.clock.now())
    return f"Customer rated {score}."


async def follow_up(w: Web, agent_id: str, form: dict[str, str]) -> str:
    task = await _held(w, agent_id, form.get("task", ""))
    hours = form.get("hours", "")
    if not hours.isdigit() or int(hours) not in FOLLOW_UP_HOURS:
        raise InvalidInput(f"a follow-up is due in {FOLLOW_UP_HOURS} hours")
    now = w.clock.now()
    made = await add_follow_up(
        w.pool, number=task.number, skill=task.skill, reason="agent", source="agent", now=now,
        policy=w.policy, name=task.name, due_at=now + int(hours) * 3600,
        attributes={"agent": agent_id, "after_task": task.id})
    return f"Follow-up booked in {hours} h." if made else \
        "No follow-up: one is pending already, or the number may not be called."


async def answer(w: Web, agent_id: str, form: dict[str, str]) -> str:
    task = await _held(w, agent_id, form.get("task", ""))
    text = form.get("text", "").strip()
    if not text or len(text) > MAX_ANSWER or any(ord(c) < 32 and c not in "\n\t" for c in text):
        raise InvalidInput(f"an answer is 1-{MAX_ANSWER} characters of plain text")
    if task.kind is not TaskKind.VOICE_REQUEST:
        raise InvalidInput("only a voice request is answered by text")
    await store_reply(w.requests, w.jobs, task.id, w.clock.now(), text=text, by=agent_id)
    return "Answer saved: the customer will be called and hear it."


ACTIONS = {"ready": ready, "pause": pause, "logout": log_out, "mode": mode, "rate": rate,
           "followup": follow_up, "answer": answer}


async def audio(request: web.Request) -> web.StreamResponse:
    """The caller's recording of the agent's current or last voice request."""
    session = await _session(request)
    w = of(request)
    try:
        task = await _held(w, session.who, request.match_info["task_id"])
    except InvalidInput:
        raise web.HTTPNotFound() from None
    found = await w.requests.get(task.id)
    if found is None:
        raise web.HTTPNotFound()
    path = w.requests.audio_path(found.audio)
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "private, no-store"})


async def sign_out(request: web.Request) -> web.Response:
    await auth.close_session(request, of(request).sessions, await _session(request), "/agent")


def routes() -> list[web.RouteDef]:
    return [web.get("/agent", sign_in_page), web.post("/agent/login", sign_in),
            web.get("/agent/", page), web.get("/agent/stream", updates),
            web.post("/agent/signout", sign_out),
            web.get(r"/agent/audio/{task_id:[A-Za-z0-9._:-]{1,128}}", audio),
            web.post(r"/agent/{action:(ready|pause|logout|mode|rate|followup|answer)}", act)]

