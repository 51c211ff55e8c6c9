"""Which channels of a held task the reconciler looks for (ari/reconcile.py legs_of)."""

from __future__ import annotations

from acdkit.ari.events import Channel
from acdkit.ari.reconcile import legs_of
from acdkit.core.agents import Agent
from acdkit.core.tasks import Task, TaskKind

TASK = "0123456789abcdef"


def live(*ids: str) -> dict[str, Channel]:
    return {i: Channel(id=i) for i in ids}


def task(kind: TaskKind, channel_id: str | None = None) -> Task:
    return Task(id=TASK, kind=kind, skill="sales", created_at=1.0, enqueued_at=1.0,
                channel_id=channel_id)


def test_a_live_call_has_its_caller_and_the_agents_legs_for_it() -> None:
    channels = live("caller-1", f"agent-7-3-{TASK[:8]}", "agent-7-4-ffffffff",
                    f"agent-70-5-{TASK[:8]}")
    customer, legs = legs_of(Agent("7"), task(TaskKind.CALL, "caller-1"), channels)
    assert customer == "caller-1"
    assert legs == [f"agent-7-3-{TASK[:8]}"]  # not another task's, not agent 70's


def test_gone_channels_are_not_named() -> None:
    customer, legs = legs_of(Agent("7"), task(TaskKind.CALL, "caller-1"), live())
    assert (customer, legs) == (None, [])


def test_a_callback_has_the_fixed_ids_of_its_attempt() -> None:
    channels = live(f"cb-{TASK}-2-a", f"cb-{TASK}-2-c", f"cb-{TASK}-1-c")
    assert legs_of(Agent("7"), task(TaskKind.CALLBACK), channels, 2) == (
        f"cb-{TASK}-2-c", [f"cb-{TASK}-2-a"])
    assert legs_of(Agent("7"), task(TaskKind.OUTBOUND), channels, 3) == (None, [])
    assert legs_of(Agent("7"), task(TaskKind.CALLBACK), channels, 0) == (None, [])
