"""Two Asterisk nodes on one pool (docs/deployment.md): the lab's node "a" and a second node
"b" (tests/lab/node_b.py), each with its own `acdkit serve`, one Redis, one worker.

- A caller waiting on node b is claimed and connected by node b's serve, while node a's
  serve runs too and races for the same agent: a live caller is its own node's to claim.
- A caller books a callback on node a; then node a goes down, its serve and its Asterisk
  both. The callback is dialed through node b, agent first, and ends once."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.lab import node_b
from tests.lab.center import FAST as CENTER_FAST
from tests.lab.center import add_agents, eventually, task_story
from tests.lab.conftest import ROOT, Serve, busy_agent_center
from tests.lab.containers import podman
from tests.lab.test_overflow_callbacks import CUSTOMER, FAST, book_instant, callbacks
from tests.lab.test_serve_restart import task_of

from acdkit.labkit.sipp import Peer, agent_peer, caller, customer_peer

pytestmark = pytest.mark.lab


@pytest.fixture
def node(tmp_path: Path) -> Iterator[node_b.NodeB]:
    made = node_b.NodeB(tmp_path)
    try:
        made.start()
        yield made
    finally:
        made.remove()


def node_a(action: str) -> None:
    """Stop the lab's Asterisk (node a), or start it and wait until it is ready."""
    name = os.environ.get("LAB_ASTERISK", "acdkit-asterisk")
    if action == "stop":
        podman("stop", "-t", "0", name)
        return
    podman("start", name)
    subprocess.run(["bash", "-c", f"source '{ROOT}/scripts/lab-lib.sh' && lab_wait_asterisk"],
                   check=True, capture_output=True, timeout=180)


def test_a_callback_booked_on_node_a_is_dialed_through_node_b_while_a_is_down(
        serve: Serve, node: node_b.NodeB, tmp_path: Path) -> None:
    center = busy_agent_center(serve, tmp_path, {**FAST, "ACDKIT_NODE_ID": "a"})
    next(center)
    serve_b = Serve(serve.redis_url, tmp_path / "serve-b.log", {**FAST, **node_b.ENV})
    try:
        serve_b.start()
        booked = book_instant(serve)  # on node a: 127.0.0.1
        assert booked["state"] == "queued"

        serve.stop()
        node_a("stop")
        down = time.monotonic()
        with agent_peer() as agents, customer_peer(hangup="*", hangup_after=1) as customers:
            agents.start()
            customers.start()
            serve_b.cli("agents", "resume", "1")
            [customer_invite] = customers.wait_for_invites(1, timeout=40)
            dialed = time.monotonic() - down
            assert customer_invite.user == CUSTOMER
            assert [i.user for i in agents.invites()][:1] == ["agent1"]
            eventually(lambda: callbacks(serve_b)[0]["state"] == "completed", 30,
                       what="the callback completed")
        log_b = serve_b.log()
        # Node b's serve took the job's command and rang the agent, then the customer.
        agent_leg, customer_leg = f"cb-{booked['id']}-1-a", f"cb-{booked['id']}-1-c"
        assert (f"agent 1 answered on {agent_leg}; dialing the customer on {customer_leg}"
                in log_b), log_b
        _, story = task_story(serve_b, booked["id"])
        assert [h["event"] for h in story].count("complete") == 1
        print(f"\nnode a down; node b dialed the callback {dialed:.1f} s later")
    finally:
        serve_b.stop()
        node_a("start")
        next(center, None)


def test_a_caller_waiting_on_node_b_is_connected_by_node_b(
        serve: Serve, node: node_b.NodeB, tmp_path: Path,
        phones: Callable[..., Peer]) -> None:
    serve.extra_env.update({**CENTER_FAST, "ACDKIT_NODE_ID": "a"})
    serve.start()
    add_agents(serve, "1", login=False)  # nobody to take the call yet: the caller waits
    serve_b = Serve(serve.redis_url, tmp_path / "serve-b.log", {**CENTER_FAST, **node_b.ENV})
    try:
        serve_b.start()
        customer = caller("100", dtmf="1", hangup_after=None, caller_id="4930600061",
                          remote=f"{node_b.ADDRESS}:5060", timeout=60).start()
        task = task_of(serve, "4930600061", "queued")
        assert f"task {task['id']} queued" in serve_b.log()  # node b's caller

        phone = phones(hangup={"agent1"}, hangup_after=1)
        serve.cli("agents", "login", "1", "--reach", "PJSIP/agent1")  # both serves hear it
        [invite] = phone.wait_for_invites(1, timeout=15)
        assert invite.from_user == "4930600061"
        task_of(serve, "4930600061", "completed", timeout=20)
        assert f"task {task['id']}: agent 1 connected" in serve_b.log()
        assert task["id"] not in serve.log()  # node a never claimed, rang or ended it
        _, story = task_story(serve, task["id"])
        assert [h["event"] for h in story] == ["add", "reserve", "connect", "complete"]
        customer.stop()
    finally:
        serve_b.stop()
