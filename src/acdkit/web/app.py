"""Build the aiohttp application of ``acdkit web``: templates, static files, security headers,
the pages' routes and the one Redis subscription that feeds their live updates."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from acdkit.config import Settings
from acdkit.core.numbers import NumberPolicy
from acdkit.ports import Clock, JobQueue
from acdkit.stopping import stop_loops
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.ratings import rating_store
from acdkit.store.requests import RequestStore
from acdkit.store.users import UserStore
from acdkit.web import agent, supervisor, wallboard
from acdkit.web.auth import FailureLimit, Sessions
from acdkit.web.context import WEB, Web
from acdkit.web.events import Hub, TooManyClients

HERE = Path(__file__).parent
MAX_BODY = 64 * 1024  # forms only: no upload is larger
HUB_STOP = 2.0  # seconds the page events' subscription gets to end
# No inline script or style: every script is a vendored or own file under /static.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
       "base-uri 'none'")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except TooManyClients as exc:
        raise web.HTTPServiceUnavailable(text=str(exc)) from None
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def build_app(settings: Settings, pool: Pool, clock: Clock, jobs: JobQueue,
              policy: NumberPolicy, callbacks: CallbackStore) -> web.Application:
    """The web application over ``pool``; its subscription starts with the app."""
    app = web.Application(middlewares=[headers], client_max_size=MAX_BODY)
    env = aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"),
                               autoescape=jinja2.select_autoescape(default=True))
    env.filters["ago"] = _ago
    env.globals["now"] = clock.now
    app[WEB] = Web(settings, pool, clock, jobs, policy,
                   Hub(pool.redis, pool.keys.changes, max_clients=settings.web.max_clients),
                   Sessions(pool, settings.web.session_ttl), FailureLimit(pool, settings.web),
                   UserStore(pool), RequestStore(pool, settings.requests),
                   rating_store(pool, settings.ratings), callbacks)
    app[wallboard.BOARD] = wallboard.BoardCache()
    app.router.add_get("/", _home)
    app.router.add_static("/static", HERE / "static", append_version=True, name="static")
    app.add_routes([*wallboard.routes(), *agent.routes(), *supervisor.routes()])
    app.cleanup_ctx.append(_subscription)
    return app


async def _home(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/wallboard")


async def _subscription(app: web.Application) -> AsyncIterator[None]:
    runner = asyncio.create_task(app[WEB].hub.run(), name="web-events")
    yield
    await stop_loops([runner], HUB_STOP)


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS when ``web.tls_cert`` and ``web.tls_key`` are set."""
    w = settings.web
    if not (w.tls_cert and w.tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(w.tls_cert, w.tls_key)
    return context
