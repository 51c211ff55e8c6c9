"""The supervisor page (``/supervisor``): every agent and every waiting task; force pause or
log out; cancel, reschedule or replay a callback; raise a task's priority; listen, whisper
or barge on an agent's call (docs/pages.md).

Listen/whisper/barge is asked of ``acdkit serve`` as a command on the pool's command list
(the one the dial-back jobs use): serve owns the ARI app, so the snoop channel and the
supervisor's leg enter it with a flow waiting for them (ari/snoop.py). The supervisor's
phone, given at sign-in, passes the same checks as every agent's reach (services/reach.py),
and serve checks it again before it dials.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import aiohttp_jinja2
from aiohttp import web
from yarl import URL

from acdkit.core.agents import AgentEvent
from acdkit.core.errors import AcdError, InvalidInput
from acdkit.core.tasks import TaskEvent, TaskState
from acdkit.core.users import Role
from acdkit.policies import reach_policy
from acdkit.services.reach import check_agent_reach
from acdkit.store.lifecycle import callback, cancel_callback, replay_callback
from acdkit.web import auth
from acdkit.web.context import Web, of
from acdkit.web.events import stream

SNOOP_MODES = ("listen", "whisper", "barge")
MAX_PRIORITY = 1_000
_WAITING = (TaskState.QUEUED, TaskState.SCHEDULED, TaskState.RESERVED, TaskState.ACTIVE)


async def phone_of(raw: str, w: Web) -> str:
    """The supervisor's reach, checked as an agent's is (services/reach.py): an allowed
    ``PJSIP/<endpoint>`` or an outside number the dialing policy and the do-not-call list
    accept. Raises ``InvalidInput`` / ``NumberRejected``."""
    return await check_agent_reach(w.pool, raw.strip(), reach_policy(w.settings, w.policy))


# -- sign-in -------------------------------------------------------------------------------


async def sign_in_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    return auth.sign_in_form(request, of(request).secure, "/supervisor/login", "User name",
                             "Password", True, error, status)


async def sign_in(request: web.Request) -> web.Response:
    w = of(request)
    form = await request.post()
    if not auth.same(request.cookies.get(auth.PRE_COOKIE, ""), str(form.get("csrf", ""))):
        raise web.HTTPForbidden(text="the form expired or came from another site: reload")
    name, password = str(form.get("who", ""))[:64], str(form.get("secret", ""))[:256]
    address = auth.client_address(request)
    if await w.limits.refused(f"user:{name}", address):
        return await sign_in_page(request, "Too many failed sign-ins: wait a few minutes.", 429)
    user = await auth.check_supervisor(w.users, name, password)
    if user is None:
        await w.limits.failed(f"user:{name}", address)
        return await sign_in_page(request, "Wrong name or password.", 401)
    try:
        reach = await phone_of(str(form.get("phone", "")), w) if form.get("phone") else ""
    except AcdError as exc:
        return await sign_in_page(request, f"Phone refused: {exc}", 400)
    await w.limits.succeeded(f"user:{name}")
    await auth.open_session(w.sessions, Role.SUPERVISOR.value, user.name,
                            "/supervisor/", secure=w.secure, ttl=w.settings.web.session_ttl,
                            reach=reach)


async def _session(request: web.Request) -> auth.Session:
    return await auth.session_for(request, of(request).sessions, Role.SUPERVISOR.value,
                                  "/supervisor")


# -- what the page shows -------------------------------------------------------------------


async def overview(request: web.Request, session: auth.Session) -> str:
    w = of(request)
    agents = await w.pool.list_agents()
    tasks = []
    for skill_tasks in await asyncio.gather(*(
            w.pool.candidates([s], 200) for s in await _skills(w))):
        tasks += [t for _, t in skill_tasks]
    held = [await w.pool.get_task(a.task_id) for a in agents if a.task_id]
    scheduled = await _scheduled(w)
    return aiohttp_jinja2.render_string("_supervisor.html", request, {
        "agents": agents, "waiting": tasks, "held": [t for t in held if t], "csrf": session.csrf,
        "scheduled": scheduled, "now": w.clock.now(), "modes": SNOOP_MODES,
        "reach": session.reach})


async def _skills(w: Web) -> list[str]:
    return sorted(cast(set[str], await w.pool.redis.smembers(w.pool.keys.skills)))


async def _scheduled(w: Web) -> list[Any]:
    ids = cast(list[str], await w.pool.redis.zrange(w.pool.keys.due, 0, 199))
    return [t for t in [await w.pool.get_task(i) for i in ids] if t is not None]


async def page(request: web.Request) -> web.Response:
    session = await _session(request)
    html = await overview(request, session)
    return aiohttp_jinja2.render_template("supervisor.html", request, {
        "body": html, "who": session.who, "csrf": session.csrf,
        "note": request.query.get("note", "")[:200]})


async def updates(request: web.Request) -> web.StreamResponse:
    session = await _session(request)

    async def render(changed: set[str]) -> str:
        return await overview(request, session)

    return await stream(request, of(request).hub, "supervisor", render)


# -- what the supervisor does ---------------------------------------------------------------


async def act(request: web.Request) -> web.Response:
    session = await _session(request)
    form = await request.post()
    auth.check_csrf(session, str(form.get("csrf", "")))
    w = of(request)
    fields = {k: str(v) for k, v in form.items()}
    try:
        note = await ACTIONS[request.match_info["action"]](w, session, fields)
    except AcdError as exc:
        note = f"Not done: {exc}"
    w.hub.publish({"*"})
    raise web.HTTPSeeOther(URL("/supervisor/").with_query(note=note[:160]))


async def force_pause(w: Web, session: auth.Session, form: dict[str, str]) -> str:
    await w.pool.move_agent(form.get("agent", ""), AgentEvent.PAUSE, w.clock.now(),
                            reason=f"by {session.who}")
    return f"Agent {form.get('agent')} paused."


async def force_logout(w: Web, session: auth.Session, form: dict[str, str]) -> str:
    await w.pool.move_agent(form.get("agent", ""), AgentEvent.LOGOUT, w.clock.now())
    return f"Agent {form.get('agent')} logged out."


async def cancel(w: Web, session: auth.Session, form: dict[str, str]) -> str:
    task = await cancel_callback(w.callbacks, form.get("task", ""), w.clock.now(),
                                 reason=f"cancelled by {session.who}")
    return f"Callback {task.id} cancelled."


async def reschedule(w: Web, session: auth.Session, form: dict[str, str]) -> str:
    minutes = form.get("minutes", "")
    if not minutes.isdigit() or not 1 <= int(minutes) <= 7 * 24 * 60:
        raise InvalidInput("reschedule: 1 minute to 7 days ahead")
    task = await callback(w.callbacks, form.get("task", ""))
    now = w.clock.now()
    await w.pool.move_task(task.id, TaskEvent.RESCHEDULE, now, due_at=now + int(minutes) * 60)
    return f"Callback {task.id} due in {minutes} min."


async def replay(w: Web, session: auth.Session, form: dict[str, str]) -> str:
    task = await replay_callback(w.callbacks, form.get("task", ""), w.clock.now())
    return f"Callback {task.id} back in line."


async def priority(w: Web, session: auth.Session, form: dict[str, str]) -> str:
    value = form.get("priority", "")
    if not value.isdigit() or int(value) > MAX_PRIORITY:
        raise InvalidInput(f"a priority is 0 to {MAX_PRIORITY}")
    task = await w.pool.update_task(form.get("task", ""), w.clock.now(), priority=int(value))
    return f"Task {task.id} priority {task.priority}."


async def snoop(w: Web, session: auth.Session, form: dict[str, str]) -> str:
    how = form.get("mode", "")
    if how not in SNOOP_MODES:
        raise InvalidInput(f"mode is one of {', '.join(SNOOP_MODES)}")
    if not session.reach:
        raise InvalidInput("sign in again with your phone to listen, whisper or barge")
    agent = await w.pool.get_agent(form.get("agent", ""))
    if agent is None or not agent.task_id:
        raise InvalidInput("that agent has no call now")
    await w.callbacks.push_command({
        "op": "snoop", "id": uuid.uuid4().hex[:12], "agent_id": agent.id, "mode": how,
        "reach": session.reach, "by": session.who})
    return f"Calling {session.reach} to {how} on agent {agent.id}."


ACTIONS = {"pause": force_pause, "logout": force_logout, "cancel": cancel,
           "reschedule": reschedule, "replay": replay, "priority": priority, "snoop": snoop}


async def sign_out(request: web.Request) -> web.Response:
    await auth.close_session(request, of(request).sessions, await _session(request), "/supervisor")


def routes() -> list[web.RouteDef]:
    names = "|".join(ACTIONS)
    return [web.get("/supervisor", sign_in_page), web.post("/supervisor/login", sign_in),
            web.get("/supervisor/", page), web.get("/supervisor/stream", updates),
            web.post("/supervisor/signout", sign_out),
            web.post(f"/supervisor/{{action:({names})}}", act)]
