"""An agent's reach passes the dialing policy at login (CLI) and again before each dial (the
connector that originates the agent's leg), against real Redis. docs/security-policy.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner
from poolkit import T0

from acdkit.ari.agents import AgentConnector, Connecting
from acdkit.ari.bridges import Bridges
from acdkit.ari.calls import Calls
from acdkit.ari.control import AriControl
from acdkit.ari.end_key import EndKey
from acdkit.ari.endings import Endings
from acdkit.ari.followup_key import FollowUpKey
from acdkit.ari.session import Sessions
from acdkit.ari.spawner import Spawner
from acdkit.ari.survey import Survey
from acdkit.cli import main
from acdkit.config import Settings
from acdkit.core.agents import Agent, AgentEvent, AgentState, ReachPolicy, check_reach
from acdkit.core.errors import InvalidInput, NumberRejected
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.policies import reach_policy
from acdkit.store.dnc import dnc_add
from acdkit.store.pool import Pool
from acdkit.store.ratings import rating_store
from acdkit.testing import FakeClock

pytestmark = pytest.mark.integration

CONFIG = """
[numbers]
do_not_call = "+12125550199"
"""
REFUSED = {
    "+19005550142": "premium_rate",  # US premium rate
    "+442079460958": "country_not_allowed",  # London, not an allowed country
    "+12125550199": "do_not_call",  # the configured do-not-call list
    "+12125550177": "do_not_call",  # the do-not-call list in Redis
    "PJSIP/pstn": "not an agent endpoint",  # the trunk: a free dial string
    "PJSIP/caller": "not an agent endpoint",
    "PJSIP/agent1@evil": "neither",
    "Local/100@default": "neither",
}


@pytest.fixture
def cli(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    config = tmp_path / "acdkit.toml"
    config.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("ACDKIT_CONFIG", str(config))
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(main, list(args))
        assert result.exit_code == code, result.output
        return json.loads(result.output) if "--json" in args else result.output

    return invoke


@pytest.mark.parametrize(("reach", "why"), sorted(REFUSED.items()))
def test_login_refuses_a_reach_the_policy_refuses(cli: Callable[..., Any], reach: str,
                                                  why: str) -> None:
    cli("agents", "add", "7", "--pin", "4321", "--skill", "sales")
    cli("dnc", "add", "+12125550177")
    out = cli("agents", "login", "7", "--reach", reach, code=65)
    assert why in out, out
    [agent] = cli("agents", "list", "--json")
    assert (agent["state"], agent["reach"]) == ("logged_out", "")


@pytest.mark.parametrize(("reach", "stored"), [("PJSIP/agent12", "PJSIP/agent12"),
                                               ("+12125550142", "+12125550142")])
def test_login_keeps_an_agent_endpoint_or_an_allowed_number(cli: Callable[..., Any],
                                                            reach: str, stored: str) -> None:
    cli("agents", "add", "7", "--pin", "4321", "--skill", "sales")
    assert f"ready at {stored}" in cli("agents", "login", "7", "--reach", reach)


def test_check_reach_is_the_policy_for_every_login_path() -> None:
    policy = ReachPolicy(NumberPolicy(), endpoints=("agent*", "desk-?"), trunk="pstn")
    assert check_reach("PJSIP/desk-4", policy) == "PJSIP/desk-4"
    assert check_reach("+12125550142", policy) == "+12125550142"
    with pytest.raises(NumberRejected, match="premium_rate"):
        check_reach("+19005550142", policy)
    with pytest.raises(InvalidInput, match="not an agent endpoint"):
        check_reach("PJSIP/pstn", ReachPolicy(NumberPolicy(), endpoints=("*",), trunk="pstn"))
    with pytest.raises(InvalidInput):
        check_reach("PJSIP/agent1\n", policy)


class RecordingControl:
    """Stands for ARI: records what would have been dialed."""

    def __init__(self) -> None:
        self.originated: list[str] = []

    async def originate(self, endpoint: str, channel_id: str, **kw: object) -> None:
        self.originated.append(endpoint)
        return None


def connecting(pool: Pool, control: RecordingControl) -> Connecting:
    """What ``AgentConnector`` uses, for one dial."""
    settings, clock, spawner = Settings(), FakeClock(T0 + 1), Spawner()
    sessions, lines, control_ = Sessions(), {}, cast(AriControl, control)
    endings = Endings(pool, clock, spawner, wrap_up=0.0, max_misses=3)
    survey = Survey(control_, pool, clock, rating_store(pool, settings.ratings),
                    settings.ratings, sessions, lines, endings)
    return Connecting(
        control_, pool, clock, sessions, Calls(), lines, spawner, Bridges(control_, "default"),
        endings, settings.center, settings.agents, reach_policy(settings, NumberPolicy()),
        decline=False, survey=survey,
        follow_up=FollowUpKey(control_, pool, clock, NumberPolicy(), settings.outbound),
        end_key=EndKey("#", control_, pool, clock, spawner, endings, survey))


@pytest.mark.parametrize("reach", ["+19005550142", "PJSIP/pstn", "+12125550177"])
async def test_a_reach_refused_at_dial_time_is_never_dialed(pool: Pool, reach: str) -> None:
    """A reach written into Redis behind the login's back (or a policy changed since): the
    connector refuses it before originating, logs the agent out and frees the task."""
    await dnc_add(pool, ["+12125550177"])
    await pool.save_agent(Agent(id="a1", skills={"sales": 5}), T0)
    await pool.move_agent("a1", AgentEvent.LOGIN, T0, reach="PJSIP/agent1")
    await pool.redis.hset(pool.keys.agent("a1"), "reach", reach)
    await pool.add_task(Task(id="t1", kind=TaskKind.CALL, skill="sales", created_at=T0,
                             enqueued_at=T0), T0)
    assert await pool.claim("a1", "t1", T0)
    control = RecordingControl()
    agent = await pool.get_agent("a1")
    assert agent is not None and agent.reach == reach
    leg = await AgentConnector(connecting(pool, control)).reach_agent(agent, "t1", "")
    assert leg is None
    assert control.originated == []
    after = await pool.get_agent("a1")
    assert after is not None and after.state is AgentState.LOGGED_OUT
    task = await pool.get_task("t1")
    assert task is not None and task.state is TaskState.QUEUED
