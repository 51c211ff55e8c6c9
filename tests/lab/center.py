"""The contact center as lab tests see it: settings that keep tests fast, and the pool read
back through the CLI's ``--json`` output (the stable surface for scripts)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.lab.conftest import Serve

from acdkit.labkit.sipp import Peer

T = TypeVar("T")

# Short timers, no overflow offer (it would talk over the queue), no whisper (a tests that
# wants it turns it back on): each ACD test then runs in seconds.
FAST = {
    "ACDKIT_AGENTS_WRAP_UP": "0.5",
    "ACDKIT_AGENTS_RING_TIMEOUT": "3",
    "ACDKIT_AGENTS_WHISPER": "false",
    "ACDKIT_OVERFLOW_WHEN_NO_AGENTS": "false",
    "ACDKIT_OVERFLOW_WHEN_OUT_OF_HOURS": "false",
    "ACDKIT_OVERFLOW_WAIT_OVER": "0",
    "ACDKIT_OVERFLOW_POSITION_OVER": "0",
}


def cli_json(serve: Serve, *args: str) -> Any:
    return json.loads(serve.cli(*args, "--json").stdout)


def tasks(serve: Serve) -> list[dict[str, Any]]:
    """`acdkit tasks list --json`: newest first."""
    return list(cli_json(serve, "tasks", "list"))


def task_story(serve: Serve, task_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`acdkit tasks show ID --json`: the task and its audit history, oldest first."""
    [shown] = cli_json(serve, "tasks", "show", task_id)
    return shown["task"], shown["history"]


def agents(serve: Serve) -> dict[str, dict[str, Any]]:
    """`acdkit agents list --json`, by agent id."""
    return {a["id"]: a for a in cli_json(serve, "agents", "list")}


def add_agents(serve: Serve, *ids: str, mode: str = "per_call", login: bool = True) -> None:
    """Agents ``ids`` with skill sales, reached at PJSIP/agent<id> (logged in: ready)."""
    for agent_id in ids:
        serve.cli("agents", "add", agent_id, "--pin", "1234", "--skill", "sales")
        if login:
            serve.cli("agents", "login", agent_id, "--reach", f"PJSIP/agent{agent_id}",
                      "--mode", mode)


def eventually(probe: Callable[[], T | None], timeout: float = 10.0, every: float = 0.1,
               what: str = "the condition") -> T:
    """Call ``probe`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what} did not happen in {timeout}s (last: {last!r})")


def answered_at(phone: Peer, call_id: str) -> float:
    """When ``phone`` sent its 200 OK to call ``call_id`` (its SIPp stamp)."""
    return min(m.time for m in phone.messages()
               if m.sent and m.status == 200 and m.call_id == call_id)
