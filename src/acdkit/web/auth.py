"""Who is signed in to the pages, and the checks around it (docs/pages.md, "Security").

- Agents sign in with their id and phone PIN (``check_agent``), supervisors with a name and
  password (``check_supervisor``, scrypt). Both hashes are slow on purpose: they run in a
  thread so the event loop keeps serving.
- A session is a random id in an HttpOnly, SameSite=Strict cookie (Secure under TLS); its
  record lives in Redis with a TTL, so signing out anywhere ends it everywhere.
- Every form carries a CSRF token: the session's, or for the sign-in forms a random one
  that must equal the ``acdkit_pre`` cookie (double submit).
- Failed sign-ins are counted per agent id (or user name) and per client address; past
  ``web.max_failures`` within ``web.failure_window`` seconds both are refused, right or wrong.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import NoReturn, cast

import aiohttp_jinja2
from aiohttp import web

from acdkit.config import WebSettings
from acdkit.core.agents import Agent
from acdkit.core.pins import PinOutcome, PinPolicy
from acdkit.core.users import Role, User, check_password
from acdkit.store.pins import verify_pin
from acdkit.store.pool import Pool
from acdkit.store.users import UserStore

COOKIE = "acdkit_session"
PRE_COOKIE = "acdkit_pre"
AGENT = "agent"


@dataclass(frozen=True)
class Session:
    sid: str
    role: str  # "agent" or a core.users.Role value
    who: str  # agent id or user name
    csrf: str
    reach: str = ""  # a supervisor's phone for listen/whisper/barge


async def check_agent(pool: Pool, agent_id: str, pin: str,
                      policy: PinPolicy) -> tuple[Agent | None, PinOutcome]:
    """The agent when ``pin`` is its phone PIN, and the outcome of the check.

    The same check and lockout as the phone login (store/pins.py): wrong PINs typed on the
    phone and on the page count together against ``agents.pin_max_failures``.
    """
    if not _plain(agent_id) or len(pin) > 12:
        return None, PinOutcome.WRONG
    checked = await verify_pin(pool, agent_id, pin, policy)
    if checked is not PinOutcome.OK:
        return None, checked
    agent = await pool.get_agent(agent_id)  # None: deleted meanwhile
    return agent, checked if agent is not None else PinOutcome.WRONG


async def check_supervisor(users: UserStore, name: str, password: str) -> User | None:
    user = await users.get(name)
    if user is None or user.role is not Role.SUPERVISOR:
        return None
    ok = await asyncio.to_thread(check_password, password, user.password_hash)
    return user if ok else None


def _plain(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isascii() and value.replace("-", "").replace(
        "_", "").replace(".", "").isalnum()


class Sessions:
    """Session records in Redis: ``web:session:<sid>`` hashes that expire."""

    def __init__(self, pool: Pool, ttl: float) -> None:
        self.redis = pool.redis
        self.base = pool.keys.base
        self.ttl = int(ttl)

    def _key(self, sid: str) -> str:
        return f"{self.base}web:session:{sid}"

    async def open(self, role: str, who: str, reach: str = "") -> Session:
        session = Session(secrets.token_urlsafe(32), role, who, secrets.token_urlsafe(32), reach)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(session.sid), mapping={"role": role, "who": who,
                                                   "csrf": session.csrf, "reach": reach})
        pipe.expire(self._key(session.sid), self.ttl)
        await pipe.execute()
        return session

    async def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 64 or not sid.replace("-", "").replace("_", "").isalnum():
            return None
        raw = cast(dict[str, str], await self.redis.hgetall(self._key(sid)))
        if not raw:
            return None
        return Session(sid, raw["role"], raw["who"], raw["csrf"], raw.get("reach", ""))

    async def close(self, sid: str) -> None:
        await self.redis.delete(self._key(sid))


class FailureLimit:
    """Failed sign-ins per subject (an agent id, a user name, a client address)."""

    def __init__(self, pool: Pool, settings: WebSettings) -> None:
        self.redis = pool.redis
        self.base = pool.keys.base
        self.limit = settings.max_failures
        self.window = int(settings.failure_window)

    def _key(self, kind: str, who: str) -> str:
        digest = hashlib.sha256(who.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self.base}web:fail:{kind}:{digest}"

    async def refused(self, who: str, address: str) -> bool:
        counts = await self.redis.mget([self._key("id", who), self._key("addr", address)])
        return any(int(c or 0) >= self.limit for c in counts)

    async def failed(self, who: str, address: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for key in (self._key("id", who), self._key("addr", address)):
            pipe.incr(key)
            pipe.expire(key, self.window, nx=True)
        await pipe.execute()

    async def succeeded(self, who: str) -> None:
        await self.redis.delete(self._key("id", who))


def client_address(request: web.Request) -> str:
    """The peer's address (a proxy in front must be trusted explicitly: not yet supported)."""
    return request.remote or "unknown"


def set_cookie(response: web.StreamResponse, name: str, value: str, *, secure: bool,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, httponly=True, samesite="Strict", secure=secure, path="/",
                        max_age=max_age)


def pre_token(request: web.Request) -> str:
    """The sign-in forms' CSRF token: the ``acdkit_pre`` cookie's, or a new one (the caller
    sets it on the response with ``set_cookie``)."""
    token = request.cookies.get(PRE_COOKIE, "")
    return token if 20 <= len(token) <= 64 else secrets.token_urlsafe(24)


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def check_csrf(session: Session, form_token: str) -> None:
    if not same(session.csrf, form_token):
        raise web.HTTPForbidden(text="the form expired or came from another site: reload")


def sign_in_form(request: web.Request, secure: bool, action: str, who: str, secret: str,
                 phone: bool, error: str, status: int) -> web.Response:
    """The sign-in form posting to ``action``, with a fresh double-submit token in its
    cookie; ``who`` and ``secret`` label the two fields, ``phone`` adds a phone field."""
    token = pre_token(request)
    response = aiohttp_jinja2.render_template(
        "sign_in.html", request, {"action": action, "csrf": token, "error": error,
                                  "who": who, "secret": secret, "phone": phone},
        status=status)
    set_cookie(response, PRE_COOKIE, token, secure=secure)
    return response


async def open_session(sessions: Sessions, role: str, who: str, home: str, *,
                       secure: bool, ttl: float, reach: str = "") -> NoReturn:
    """Sign ``who`` in: a new session, its cookie, and a redirect to ``home``."""
    session = await sessions.open(role, who, reach)
    response = web.HTTPSeeOther(home)
    set_cookie(response, COOKIE, session.sid, secure=secure, max_age=int(ttl))
    raise response


async def session_for(request: web.Request, sessions: Sessions, role: str,
                      sign_in_at: str) -> Session:
    """The request's session for ``role``; a redirect to ``sign_in_at`` without one, 403
    for a session of another role."""
    session = await sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise web.HTTPSeeOther(sign_in_at)
    if session.role != role:
        raise web.HTTPForbidden(text=f"this page is for {role}s")
    return session


async def close_session(request: web.Request, sessions: Sessions, session: Session,
                        sign_in_at: str) -> NoReturn:
    """Sign out: the form's CSRF token checked, the session ended, its cookie dropped, and
    a redirect to ``sign_in_at``."""
    form = await request.post()
    check_csrf(session, str(form.get("csrf", "")))
    await sessions.close(session.sid)
    response = web.HTTPSeeOther(sign_in_at)
    response.del_cookie(COOKIE, path="/")
    raise response
