"""A Redis failover while a real caller books a callback (docs/redis-ha.md). serve and the
worker reach Redis through a Sentinel group: one primary, two replicas, three sentinels
(tests/integration/sentinels.py), and a replica must confirm every booking
(``redis.min_replicas_ack = 1``), every redis-server and sentinel a container of the lab
image (tests/lab/containers.py). The primary fails over (``SENTINEL FAILOVER``, or SIGKILL)
when serve makes the caller its overflow offer, so the caller's keys, the booking and its
confirmation come while the sentinels promote a replica.

Either the caller heard "booked", and then the new primary has the callback and it is
dialed agent first, or the caller was told it could not be booked and nothing is kept.
Never "booked" and then lost. serve and the worker run on without a restart."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.sentinels import MASTER, SentinelGroup
from tests.lab.center import eventually
from tests.lab.conftest import Serve, busy_agent_center
from tests.lab.containers import SentinelContainers
from tests.lab.observer import observe_channels
from tests.lab.test_overflow_callbacks import CUSTOMER, FAST, INSTANT, callbacks

from acdkit.labkit.sipp import agent_peer, caller, customer_peer

pytestmark = pytest.mark.lab

BOOKED = re.compile(r"became callback (\S+) for")


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    (tmp_path / "redis").mkdir()
    made = SentinelContainers(tmp_path / "redis")
    try:
        made.start()
        yield made
    finally:
        made.close()


def fail_over(group: SentinelGroup, fault: str) -> tuple[int, int]:
    """Fail the primary over; (old, new) once the new one is up (the killed one comes back
    as its replica, so bookings can be confirmed again)."""
    if fault == "sentinel failover":
        return group.failover()
    old = group.primary()
    group.kill(old)
    new = group.wait_new_primary(old)
    group.start_data(old, replica_of=new)
    return old, new


@pytest.mark.parametrize("fault", ["sentinel failover", "primary killed"])
def test_a_failover_during_a_booking_never_loses_a_confirmed_callback(
        serve: Serve, group: SentinelGroup, tmp_path: Path, fault: str) -> None:
    serve.redis_url = f"redis://127.0.0.1:{group.data[0]}/0"  # user and database only
    env = {**FAST, "ACDKIT_REDIS_SENTINELS": group.sentinel_list,
           "ACDKIT_REDIS_MASTER_NAME": MASTER, "ACDKIT_REDIS_MIN_REPLICAS_ACK": "1",
           "ACDKIT_REDIS_ACK_TIMEOUT_MS": "1000"}
    center = busy_agent_center(serve, tmp_path, env)
    _, worker = next(center)
    try:
        registered = serve.registrations()
        booking = caller("100", dtmf=INSTANT, caller_id=CUSTOMER, timeout=60).start()
        eventually(lambda: "overflow offer" in serve.log(), 20, what="the overflow offer")
        started = time.monotonic()
        old, new = fail_over(group, fault)
        took = time.monotonic() - started
        result = booking.wait(60)
        assert result.hung_up_by == "remote", result  # told something, then hung up

        confirmed = BOOKED.search(serve.log())
        kept = callbacks(serve)  # read through the sentinels: from the new primary
        if confirmed:
            [callback] = kept
            assert callback["id"] == confirmed.group(1)
            assert callback["number"] == f"+{CUSTOMER}"
            with group.client(new) as primary:
                assert primary.hget(f"acdkit:{{pool}}:task:{callback['id']}", "state") \
                    == "queued"
        else:
            assert kept == [], "a callback the caller was not told of was kept"
            assert "Redis" in serve.log()  # why the caller was sent to the failure prompt

        # No acdkit process was restarted: the same serve, app registered once, one worker.
        assert serve.proc is not None and serve.proc.poll() is None
        assert serve.registrations() == registered
        assert worker.proc is not None and worker.proc.poll() is None

        if confirmed:  # dialed through the new primary, agent first
            with observe_channels() as seen, agent_peer() as agents, \
                    customer_peer(hangup="*", hangup_after=1) as customers:
                agents.start()
                customers.start()
                serve.cli("agents", "resume", "1")
                [customer_invite] = customers.wait_for_invites(1, timeout=40)
                assert customer_invite.user == CUSTOMER
                assert [i.user for i in agents.invites()][:1] == ["agent1"]
                # Asterisk's own order (tests/lab/observer.py says why not SIPp's stamps).
                assert seen.wait_for_customer_legs(), seen.events
                assert seen.customers_dialed_early() == [], seen.events
                eventually(lambda: callbacks(serve)[0]["state"] == "completed"
                           if callbacks(serve) else False, 30, what="the callback completed")
        print(f"\n{fault}: {old} -> {new} in {took:.1f} s; the caller was "
              f"{'booked' if confirmed else 'told it could not be booked'}")
    finally:
        next(center, None)  # the worker stops
