"""Helpers for the pages' integration tests: the app on a real Redis, signed-in clients."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient

from acdkit.config import Settings, WebSettings
from acdkit.core.agents import Agent, hash_pin
from acdkit.core.users import Role, User, hash_password
from acdkit.policies import number_policy
from acdkit.ports import Clock
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.users import UserStore
from acdkit.testing import FakeJobQueue
from acdkit.web.app import build_app

SALT = b"0123456789abcdef"
PIN = "4321"
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def settings(**web_settings: object) -> Settings:
    return Settings(web=WebSettings(**web_settings))  # type: ignore[arg-type]


def app_of(pool: Pool, clock: Clock, jobs: FakeJobQueue, config: Settings) -> web.Application:
    return build_app(config, pool, clock, jobs, number_policy(config), CallbackStore(pool))


async def add_agent(pool: Pool, agent_id: str = "7", pin: str = PIN) -> Agent:
    return await pool.save_agent(Agent(id=agent_id, name="Ann", pin_hash=hash_pin(pin, SALT),
                                       skills={"sales": 5}, reach=f"PJSIP/agent{agent_id}"))


async def add_supervisor(pool: Pool, name: str = "sam") -> None:
    await UserStore(pool).save(User(name, Role.SUPERVISOR, hash_password(PASSWORD, SALT)))


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, html[:500]
    return found.group(1)


async def sign_in(client: TestClient, page: str, who: str, secret: str,
                  **extra: str) -> tuple[int, str]:
    """Open the sign-in form of ``page`` (/agent or /supervisor) and post it: (status, body
    of the page reached)."""
    form = await client.get(page)
    token = csrf_of(await form.text())
    resp = await client.post(f"{page}/login", data={"csrf": token, "who": who, "secret": secret,
                                                     **extra})
    return resp.status, await resp.text()
