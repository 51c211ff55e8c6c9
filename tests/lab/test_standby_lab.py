"""Two `acdkit serve` processes for one node on the lab: one active, one standby
(docs/standby.md). The active is SIGKILLed while a caller waits in the queue; the standby
takes the node's lease within seconds, connects the ARI app, adopts the waiting caller
(src/acdkit/ari/reconcile.py) and the caller is served by an agent, never left in silence."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.lab.center import FAST, add_agents, eventually, task_story
from tests.lab.conftest import Serve
from tests.lab.test_serve_restart import call, task_of

from acdkit.labkit.sipp import Peer

pytestmark = pytest.mark.lab

LEASE = {"ACDKIT_NODE_ID": "lab", "ACDKIT_NODE_LEASE": "true", "ACDKIT_NODE_LEASE_TTL": "3",
         "ACDKIT_NODE_LEASE_MARGIN": "1", "ACDKIT_NODE_STANDBY_POLL": "0.5"}


@pytest.fixture
def standby(serve: Serve, tmp_path: Path) -> Iterator[Serve]:
    """A second serve with the settings of ``serve``, started as a standby by the test."""
    second = Serve(serve.redis_url, tmp_path / "standby.log")
    yield second
    second.stop()
    sys.stdout.write(f"\n--- standby log ---\n{second.log()[-6000:]}\n")


def start_waiting(serve: Serve, host: str) -> None:
    """Start ``serve`` without waiting for its app (a standby does not register it); with
    ``host``, under that host name (its own UTS namespace): as if on another machine, where
    the active's death cannot be seen and only the lease's expiry hands the node over."""
    serve.launch(("unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "-")
                 if host else ())


@pytest.mark.parametrize("host", ["", "standby-host"], ids=["same-machine", "other-machine"])
def test_the_standby_takes_over_and_serves_the_waiting_caller(
        serve: Serve, standby: Serve, phones: Callable[..., Peer], host: str) -> None:
    serve.extra_env.update({**FAST, **LEASE})
    serve.start()
    add_agents(serve, "1", login=False)  # nobody to take the call yet: the caller waits
    customer = call("4930600021", hangup_after=None, timeout=60)
    queued, _ = task_story(serve, task_of(serve, "4930600021", "queued")["id"])

    standby.extra_env.update(serve.extra_env)  # the same node
    start_waiting(standby, host)
    eventually(lambda: "node lab, app acdkit: standby" in standby.log(), 15,
               what="the second serve waiting as a standby")
    assert standby.registrations() == 0  # it leaves the ARI app alone meanwhile

    killed = time.monotonic()
    serve.stop(signal.SIGKILL)
    standby.wait_registered(15)
    took = time.monotonic() - killed
    assert "active (lease epoch 2)" in standby.log()
    assert took < 8, f"the standby took {took:.1f} s"
    # Proven dead on the same machine: at the next poll; elsewhere: once the lease expired
    # (3 s after the last renew, which came at most a third of that before the kill).
    assert ("is gone; taking over" in standby.log()) is not bool(host)
    assert took > 1.5 if host else took < 3
    eventually(lambda: "adopted" in standby.log(), 10, what="the waiting caller adopted")

    phone = phones(hangup={"agent1"}, hangup_after=2)
    standby.cli("agents", "login", "1", "--reach", "PJSIP/agent1")
    [invite] = phone.wait_for_invites(1, timeout=15)
    assert invite.from_user == "4930600021"
    result = customer.wait(30)
    assert result.ok and result.hung_up_by == "remote", result  # the agent hung up
    done = task_of(standby, "4930600021", "completed")
    assert done["id"] == queued["id"] and done["agent"] == "1"
    task, history = task_story(standby, done["id"])
    assert task["enqueued_at"] == queued["enqueued_at"]  # its place in line kept
    assert [h["event"] for h in history] == ["add", "reserve", "connect", "complete"]
    sys.stdout.write(f"\nstandby ({host or 'same machine'}) took over {took:.2f} s after "
                     "the SIGKILL\n")
