"""``acdkit agents``: add, list, login, logout, pause, resume, mode."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import click

from acdkit.cli.common import TEXT, emit, handle_errors, run, settings_of, with_pool
from acdkit.cli.ratings import agent_columns
from acdkit.core.agents import Agent, AgentEvent, AgentMode, hash_pin
from acdkit.core.errors import InvalidInput, NoSuchAgent
from acdkit.policies import reach_policy
from acdkit.ports import SystemClock
from acdkit.services.reach import check_agent_reach
from acdkit.store.pool import Pool

MODES = click.Choice([m.value for m in AgentMode])


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key or not val:
            raise InvalidInput(f"{what} {value!r}: expected NAME=VALUE")
        pairs[key] = val
    return pairs


def _skills(values: tuple[str, ...]) -> dict[str, int]:
    skills = {}
    for name, level in _pairs(tuple(v if "=" in v else f"{v}=5" for v in values), "skill").items():
        if not (level.isascii() and level.isdigit()) or not 1 <= int(level) <= 9:  # not "²"
            raise InvalidInput(f"skill {name}: level {level!r} is not 1..9")
        skills[name] = int(level)
    return skills


async def _agent(pool: Pool, agent_id: str) -> Agent:
    agent = await pool.get_agent(agent_id)
    if agent is None:
        raise NoSuchAgent(f"no agent {agent_id!r} (see `acdkit agents list`)")
    return agent


def _row(agent: Agent) -> dict[str, Any]:
    return {"id": agent.id, "name": agent.name, "state": agent.state.value,
            "mode": agent.mode.value, "reach": agent.reach, "task": agent.task_id,
            "skills": ",".join(f"{k}={v}" for k, v in sorted(agent.skills.items())),
            "attributes": dict(agent.attributes), "misses": agent.misses}


@click.group()
def agents() -> None:
    """Manage agents: profiles, sign-in on any phone, pause, connection mode."""


@agents.command("add")
@click.argument("agent_id", type=TEXT)
@click.option("--name", type=TEXT, default="")
@click.option("--pin", type=TEXT, required=True, help="4-12 digits, for phone login")
@click.option("--skill", "skills", type=TEXT, multiple=True,
              help="NAME or NAME=LEVEL (1-9); repeat")
@click.option("--attr", "attrs", type=TEXT, multiple=True, help="NAME=VALUE; repeat")
@click.option("--mode", type=MODES, default=AgentMode.PER_CALL.value)
@click.pass_context
@handle_errors
def add(ctx: click.Context, agent_id: str, name: str, pin: str, skills: tuple[str, ...],
        attrs: tuple[str, ...], mode: str) -> None:
    """Create or update an agent's profile (state is kept)."""

    async def work(pool: Pool) -> None:
        current = await pool.get_agent(agent_id) or Agent(id=agent_id)
        await pool.save_agent(replace(current, name=name or current.name,
                                      pin_hash=hash_pin(pin, os.urandom(16)),
                                      skills=_skills(skills) or current.skills,
                                      attributes=_pairs(attrs, "attribute") or current.attributes,
                                      mode=AgentMode(mode)))

    run(with_pool(settings_of(ctx), work))
    click.echo(f"agent {agent_id} saved")


@agents.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def list_(ctx: click.Context, as_json: bool) -> None:
    """All agents with their state, mode and reach, their rating by customers (shrunk
    overall mean, number of ratings) and the calls they declined from the whisper."""
    settings = settings_of(ctx)

    async def work(pool: Pool) -> tuple[list[Agent], dict[str, dict[str, Any]]]:
        return await pool.list_agents(), await agent_columns(pool, settings.ratings)

    found, marks = run(with_pool(settings, work))
    rows = [{**_row(a), **marks.get(a.id, {})} for a in sorted(found, key=lambda a: a.id)]
    emit(rows, as_json, ["id", "name", "state", "mode", "reach", "task", "skills", "rating",
                         "ratings", "declines"])


def _move(ctx: click.Context, agent_id: str, event: AgentEvent, **kw: Any) -> Agent:
    async def work(pool: Pool) -> Agent:
        await _agent(pool, agent_id)
        return await pool.move_agent(agent_id, event, SystemClock().now(), **kw)

    return run(with_pool(settings_of(ctx), work))


@agents.command("login")
@click.argument("agent_id", type=TEXT)
@click.option("--reach", type=TEXT, required=True, help="PJSIP/<endpoint> (agents.endpoints) or an "
              "outside number the dialing policy allows (+15551234)")
@click.option("--mode", type=MODES, help="per_call or persistent (default: the profile's)")
@click.pass_context
@handle_errors
def login(ctx: click.Context, agent_id: str, reach: str, mode: str | None) -> None:
    """Sign an agent in, reachable at REACH; it becomes ready for tasks. A number must pass
    the dialing policy (no premium, foreign or do-not-call number)."""
    settings = settings_of(ctx)

    async def work(pool: Pool) -> Agent:
        await _agent(pool, agent_id)
        checked = await check_agent_reach(pool, reach, reach_policy(settings))
        return await pool.move_agent(agent_id, AgentEvent.LOGIN, SystemClock().now(),
                                     reach=checked, mode=AgentMode(mode) if mode else None)

    agent = run(with_pool(settings, work))
    click.echo(f"agent {agent_id} ready at {agent.reach} ({agent.mode.value})")


@agents.command("logout")
@click.argument("agent_id", type=TEXT)
@click.pass_context
@handle_errors
def logout(ctx: click.Context, agent_id: str) -> None:
    """Sign an agent out."""
    _move(ctx, agent_id, AgentEvent.LOGOUT)
    click.echo(f"agent {agent_id} logged out")


@agents.command("pause")
@click.argument("agent_id", type=TEXT)
@click.option("--reason", type=TEXT, default="break")
@click.pass_context
@handle_errors
def pause(ctx: click.Context, agent_id: str, reason: str) -> None:
    """Stop giving an agent tasks (after the current one)."""
    _move(ctx, agent_id, AgentEvent.PAUSE, reason=reason)
    click.echo(f"agent {agent_id} paused ({reason})")


@agents.command("resume")
@click.argument("agent_id", type=TEXT)
@click.pass_context
@handle_errors
def resume(ctx: click.Context, agent_id: str) -> None:
    """Make a paused agent ready again."""
    _move(ctx, agent_id, AgentEvent.RESUME)
    click.echo(f"agent {agent_id} ready")


@agents.command("mode")
@click.argument("agent_id", type=TEXT)
@click.argument("mode", type=MODES)
@click.pass_context
@handle_errors
def mode(ctx: click.Context, agent_id: str, mode: str) -> None:
    """Switch an agent between per_call and persistent; takes effect at its next task."""

    async def work(pool: Pool) -> None:
        agent = await _agent(pool, agent_id)
        await pool.save_agent(replace(agent, mode=AgentMode(mode)))

    run(with_pool(settings_of(ctx), work))
    click.echo(f"agent {agent_id} mode {mode} (from the next task)")
