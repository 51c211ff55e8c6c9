"""Dialplan mode against the lab's app_queue: `acdkit agi` (FastAGI routes + AMI watcher +
dial-back) as a real process, extension 200 (Queue(sales) with the callback-offer AGI at its
overflow point), SIPp callers, agents (queue members agent1-3) and customers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.lab.center import eventually, task_story, tasks
from tests.lab.conftest import LAB_CONFIG, ROOT, Serve, hang_up_all

from acdkit.labkit.sipp import Peer, agent_peer, caller, customer_peer

pytestmark = pytest.mark.lab

CUSTOMER = "2125550142"  # lab caller ID: +1 212 555 0142, dialled back at 127.0.0.4:5080
QUEUE_TIMEOUT = 20.0  # ACDKIT_QUEUE_TIMEOUT in asterisk/etc/extensions.conf
# Out of Queue() after 20 s; "1" in the offer (instant callback), "1" in the number read-back.
TAKE_CALLBACK = "w" * 46 + "1" + "w" * 12 + "1"


class Agi(Serve):
    """`acdkit agi` as a process (the same settings, log and CLI as ``Serve``)."""

    def start(self, wait: float = 15.0) -> Agi:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "acdkit", "-v", "agi"],
                                         env=self.env(), cwd=ROOT, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.wait_logged("FastAGI listening", wait)
        self.wait_logged("AMI connected", wait)
        return self

    def wait_logged(self, text: str, wait: float, times: int = 1) -> None:
        deadline = time.monotonic() + wait
        while self.log().count(text) < times:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            assert time.monotonic() < deadline, f"{text!r} not logged in {wait}s:\n{self.log()}"
            time.sleep(0.05)


@pytest.fixture
def agi(lab: Path, redis_url: str, tmp_path: Path) -> Iterator[Agi]:
    yield from agi_process(redis_url, tmp_path)


def agi_process(redis_url: str, tmp_path: Path) -> Iterator[Agi]:
    """An ``Agi`` (not started) for a fixture; stopped, calls hung up, log shown after."""
    proc = Agi(redis_url, tmp_path / "agi.log", {"ACDKIT_CONFIG": str(LAB_CONFIG)})
    yield proc
    proc.stop(signal.SIGTERM)
    left = hang_up_all()
    sys.stdout.write(f"\n--- agi log ---\n{proc.log()[-8000:]}\n"
                     + (f"--- channels left over and hung up: {left}\n" if left else ""))


def test_a_caller_out_of_the_queue_is_called_back_into_it(agi: Agi, tmp_path: Path) -> None:
    """Dial 200, nobody answers in Queue() for 20 s, the AGI offer: 1 (instant callback),
    1 (the read-back number is right). The caller hears the reference and is hung up; acdkit
    dials the customer back through AMI and the answered customer re-enters Queue(sales),
    where a member (agent1-3) answers."""
    agi.start()
    with customer_peer(workdir=tmp_path / "customers") as customers:
        result = caller("200", dtmf=TAKE_CALLBACK, caller_id=CUSTOMER, timeout=70).run()
        assert result.ok, result
        assert result.hung_up_by == "remote"  # acdkit-goodbye hung up after "stored"
        [task] = eventually(lambda: [t for t in tasks(agi) if t["kind"] == "callback"], 5,
                            what="the callback stored")
        assert (task["skill"], task["number"]) == ("queue:sales", "+" + "1" + CUSTOMER)
        with agent_peer(workdir=tmp_path / "agents") as agents:
            [invite] = customers.wait_for_invites(1, timeout=15)
            assert invite.user == "1" + CUSTOMER
            [member] = agents.wait_for_invites(1, timeout=25)[:1]
            assert member.user in {"agent1", "agent2", "agent3"}
            done = eventually(lambda: [t for t in tasks(agi) if t["id"] == task["id"]
                                       and t["state"] == "completed"], 30,
                              what="the callback completed")
    assert done[0]["outcome"].startswith("connected to agent"), done
    _, history = task_story(agi, task["id"])
    events = [h["event"] for h in history]
    assert events[:2] == ["booked", "add"] or events[:2] == ["add", "booked"], events
    assert "attempt_requested" in events and "attempt_answered" in events, events
    assert events[-1] == "complete", events


def test_agent_first_rings_a_member_then_the_customer(agi: Agi, tmp_path: Path) -> None:
    """agi.agent_first: the dial-back rings a free queue member first
    (acdkit-callback-agent-first) and dials the customer once the member answered."""
    agi.extra_env["ACDKIT_AGI_AGENT_FIRST"] = "true"
    agi.start()
    with customer_peer(workdir=tmp_path / "customers") as customers:
        result = caller("200", dtmf=TAKE_CALLBACK, caller_id=CUSTOMER, timeout=70).run()
        assert result.ok, result
        [task] = eventually(lambda: [t for t in tasks(agi) if t["kind"] == "callback"], 5,
                            what="the callback stored")
        with agent_peer(workdir=tmp_path / "agents") as agents:
            done = eventually(lambda: [t for t in tasks(agi) if t["id"] == task["id"]
                                       and t["state"] == "completed"], 40,
                              what="the callback completed")
            # The member's phone shows whom it calls back (Originate's CallerID).
            rung = [i for i in agents.invites() if i.from_user == "1" + CUSTOMER]
            assert rung, agents.invites()
            [invite] = customers.wait_for_invites(1, timeout=5)
            assert invite.user == "1" + CUSTOMER
    assert done[0]["outcome"].startswith("connected to PJSIP/agent"), done


def test_a_customer_who_leaves_the_queue_before_a_member_answers_is_not_served(
        agi: Agi, tmp_path: Path) -> None:
    """The dialled-back customer answers, waits in Queue() while the members' phones ring,
    and hangs up: an abandoned attempt, retried, then failed; never completed."""
    agi.extra_env.update({"ACDKIT_CALLBACKS_INTERVALS": "2",
                          "ACDKIT_CALLBACKS_MAX_ATTEMPTS": "2"})
    agi.start()
    with customer_peer(workdir=tmp_path / "customers", hangup="*", hangup_after=2) as customers:
        result = caller("200", dtmf=TAKE_CALLBACK, caller_id=CUSTOMER, timeout=70).run()
        assert result.ok, result
        [task] = eventually(lambda: [t for t in tasks(agi) if t["kind"] == "callback"], 5,
                            what="the callback stored")
        with members_ringing():
            done = eventually(lambda: [t for t in tasks(agi) if t["id"] == task["id"]
                                       and t["state"] in ("failed", "completed")], 60,
                              what="the callback ended")
        assert len(customers.invites()) == 2
    assert done[0]["state"] == "failed", done
    _, history = task_story(agi, task["id"])
    ends = [h["event"] for h in history if h["event"].startswith("attempt_")
            and h["event"] not in ("attempt_requested", "attempt_connected")]
    assert ends == ["attempt_abandoned", "attempt_abandoned"], ends


def test_a_caller_who_hangs_up_in_the_queue_becomes_a_follow_up(agi: Agi) -> None:
    """A caller who leaves Queue() by hanging up (QueueCallerAbandon, then Hangup) becomes
    one follow-up task; a caller whose Queue() times out into the AGI offer does not."""
    agi.start()
    with customers_busy(), members_ringing():
        result = caller("200", hangup_after=4, caller_id="2125550143", timeout=15).run()
        assert result.ok, result
        [follow] = eventually(lambda: [t for t in tasks(agi) if t["kind"] == "outbound"], 15,
                              what="the follow-up")
        assert (follow["number"], follow["skill"]) == ("+12125550143", "queue:sales")
        shown, _ = task_story(agi, follow["id"])
        assert shown["source"] == "ami:abandon", shown
        timed_out = caller("200", hangup_after=QUEUE_TIMEOUT + 4, caller_id="2125550145",
                           timeout=40).run()
        assert timed_out.ok, timed_out
        agi.wait_logged("FastAGI: callback-offer on", 5)
        time.sleep(1)
        assert not [t for t in tasks(agi) if t["number"] == "+12125550145"], tasks(agi)


def members_ringing() -> Peer:
    """Queue members whose phones ring unanswered: app_queue's INVITEs are answered (180,
    then 487 to its CANCEL) instead of being retransmitted into the next test's agents."""
    return agent_peer(noanswer="*")


def customers_busy() -> Peer:
    """Customers who answer busy: a follow-up dialed meanwhile ends at once, and no INVITE
    to 127.0.0.4 is left retransmitting into the next test's customer phone."""
    return customer_peer(busy="*")


def test_agi_and_the_ami_watcher_survive_an_asterisk_restart(agi: Agi) -> None:
    agi.start()
    subprocess.run(["bash", "-c", "source scripts/podman-env.sh && "
                    "bash scripts/lab-restart-asterisk.sh"], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ})
    agi.wait_logged("AMI disconnected", 10)
    agi.wait_logged("AMI connected", 20, times=2)
    # Both halves at once: one caller abandons (AMI), one reaches the AGI offer (FastAGI).
    with customers_busy(), members_ringing():
        into_agi = caller("200", hangup_after=QUEUE_TIMEOUT + 4, caller_id="2125550146",
                          timeout=40, local_ip="127.0.0.2").start()
        result = caller("200", hangup_after=4, caller_id="2125550144", timeout=15).run()
        assert result.ok, result
        eventually(lambda: [t for t in tasks(agi) if t["number"] == "+12125550144"], 15,
                   what="the follow-up after the restart")
        assert into_agi.wait(45).ok
        agi.wait_logged("FastAGI: callback-offer on", 5)
    assert agi.proc is not None and agi.proc.poll() is None
