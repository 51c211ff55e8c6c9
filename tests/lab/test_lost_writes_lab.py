"""Writes a Redis failover took along (docs/redis-ha.md): the promoted replica lacks the last
writes that were not confirmed, while serve and its flows go on. The tests roll the pool's
keys back to a snapshot taken earlier (DUMP, then RESTORE), which is what such a failover
leaves behind, and check that no agent stays held and no caller waits for nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import redis
from tests.lab.center import FAST, add_agents, eventually
from tests.lab.conftest import Serve
from tests.lab.test_serve_restart import agent_state, call, events, task_of

from acdkit.ari.reconcile import RESETTLE_EVERY
from acdkit.labkit.sipp import Peer

pytestmark = pytest.mark.lab

Snapshot = dict[str, bytes]


def snapshot(url: str) -> Snapshot:
    with redis.Redis.from_url(url) as r:
        return {key.decode(): r.dump(key) for key in r.scan_iter("acdkit:*", count=1000)}


def roll_back(url: str, to: Snapshot) -> None:
    """The pool's keys as they were at ``to``: what a replica that lagged holds once it is
    promoted."""
    with redis.Redis.from_url(url) as r:
        pipe = r.pipeline(transaction=True)
        for key in r.scan_iter("acdkit:*", count=1000):
            if key.decode() not in to:
                pipe.delete(key)
        for key, value in to.items():
            pipe.restore(key, 0, value, replace=True)
        pipe.execute()


def test_a_call_whose_end_was_lost_is_ended_again_and_its_agent_freed(
        serve: Serve, phones: Callable[..., Peer]) -> None:
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1")
    phones()
    customer = call("4930600051", hangup_after=3)
    task = task_of(serve, "4930600051", "active")
    agent_state(serve, "1", "on_call")
    during = snapshot(serve.redis_url)
    assert customer.wait(20).ok
    task_of(serve, "4930600051", "completed")
    agent_state(serve, "1", "ready")

    roll_back(serve.redis_url, during)  # the end of the call is lost
    task_of(serve, "4930600051", "active", timeout=2)
    lost_at = time.monotonic()
    # Within two rounds: one to age past the grace, one to settle.
    task_of(serve, "4930600051", "completed", timeout=2 * RESETTLE_EVERY + 10)
    agent_state(serve, "1", "ready", 10)
    took = time.monotonic() - lost_at
    assert events(serve, task["id"])[-1] == "complete"
    assert "resettled 1 holds whose end was lost" in serve.log()
    print(f"\nthe lost end was settled {took:.1f} s later")


def test_a_waiting_caller_whose_task_was_lost_is_queued_again_and_served(
        serve: Serve, phones: Callable[..., Peer]) -> None:
    serve.extra_env.update({**FAST, "ACDKIT_QUEUE_ANNOUNCE_EVERY": "2"})
    serve.start()
    add_agents(serve, "1", login=False)  # nobody to take the call: the caller waits
    before = snapshot(serve.redis_url)
    customer = call("4930600052", hangup_after=None, timeout=60)
    task = task_of(serve, "4930600052", "queued")

    roll_back(serve.redis_url, before)  # the caller's task is lost
    eventually(lambda: "was lost by Redis: queued again" in serve.log(), 10,
               what="the caller's flow queuing its task again")
    again = task_of(serve, "4930600052", "queued")
    assert again["id"] == task["id"]

    phone = phones(hangup={"agent1"}, hangup_after=1)
    serve.cli("agents", "login", "1", "--reach", "PJSIP/agent1")
    [invite] = phone.wait_for_invites(1, timeout=15)
    assert invite.from_user == "4930600052"
    task_of(serve, "4930600052", "completed", timeout=20)
    customer.stop()
