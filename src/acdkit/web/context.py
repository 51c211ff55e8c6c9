"""What the page handlers share, built once by ``app.build_app`` (wired in bootstrap.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from acdkit.config import Settings
from acdkit.core.numbers import NumberPolicy
from acdkit.ports import Clock, JobQueue
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore
from acdkit.store.requests import RequestStore
from acdkit.store.users import UserStore
from acdkit.web.auth import FailureLimit, Sessions
from acdkit.web.events import Hub


@dataclass(frozen=True)
class Web:
    settings: Settings
    pool: Pool
    clock: Clock
    jobs: JobQueue
    policy: NumberPolicy
    hub: Hub
    sessions: Sessions
    limits: FailureLimit
    users: UserStore
    requests: RequestStore
    ratings: RatingStore
    callbacks: CallbackStore

    @property
    def secure(self) -> bool:
        """Served over TLS: cookies get the Secure flag."""
        return bool(self.settings.web.tls_cert and self.settings.web.tls_key)


WEB = web.AppKey("acdkit_web", Web)


def of(request: web.Request) -> Web:
    return request.app[WEB]
