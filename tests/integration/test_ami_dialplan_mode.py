"""Dialplan mode's AMI side on a real Redis, with the AMI transport faked (a link that
answers actions from a script and records them): the watcher's follow-ups for abandoned
callers (and none for a Queue() that timed out), and the dial-back into Queue(): attempt
recorded before the Originate, one ChannelId per attempt, never two dials at once, outcomes
applied with the retry policy, completion when a member takes the customer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from panoramisk.message import Message
from poolkit import T0, StepClock

from acdkit import dialplan_vars as dv
from acdkit.agi.offer import Caller, dialplan_callback
from acdkit.ami import dialback as dialback_module
from acdkit.ami import watcher as watcher_module
from acdkit.ami.dialback import QueueDialBack
from acdkit.ami.originate import DialPlan
from acdkit.ami.watcher import Watcher
from acdkit.core.callbacks import DialOutcome, RetryPolicy
from acdkit.core.dtmf import BusinessHours
from acdkit.core.errors import AmiUnavailable
from acdkit.core.members import MemberBoard
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import TaskKind, TaskState
from acdkit.services.dial_back import DialBack
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore

FIXTURES = Path(__file__).parents[1] / "unit" / "fixtures" / "ami"
NUMBERS = NumberPolicy(default_region="US",
                       calling_hours=BusinessHours.parse("mon-sun 00:00-24:00"))
ABANDON = {"Event": "QueueCallerAbandon", "Queue": "sales", "CallerIDNum": "2125550142",
           "Uniqueid": "1795626532.0", "HoldTime": "21"}


class FakeLink:
    """The AMI link as the dial-back sees it: ``connected`` and ``action()``."""

    def __init__(self, reply: Callable[[Mapping[str, Any]], Any]) -> None:
        self.connected = asyncio.Event()
        self.connected.set()
        self.reply = reply
        self.sent: list[Mapping[str, Any]] = []

    async def action(self, action: Mapping[str, Any], timeout: float | None = None) -> Any:
        self.sent.append(action)
        result = self.reply(action)
        if asyncio.iscoroutine(result):
            result = await result
        if isinstance(result, Exception):
            raise result
        return result


def originate_response(reason: str) -> list[dict[str, str]]:
    return [{"Response": "Success", "Message": "Originate successfully queued"},
            {"Event": "OriginateResponse", "Response": "Success", "Reason": reason}]


def messages(name: str, replace: dict[str, str] | None = None) -> list[Message]:
    """The AMI events of a transcript recorded on the lab, as panoramisk parses them."""
    text = (FIXTURES / name).read_text().replace("\r\n", "\n")
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    return [m for m in (Message.from_line(block.strip().replace("\n", "\r\n"))
                        for block in text.split("\n\n") if block.strip()) if m is not None]


def board() -> MemberBoard:
    made = MemberBoard()
    for name in ("agent1", "agent2"):
        made.apply({"Event": "QueueMember", "Queue": "sales", "Name": name,
                    "Location": f"PJSIP/{name}", "StateInterface": f"PJSIP/{name}",
                    "Status": "1", "Paused": "0"})
    return made


@pytest.fixture(autouse=True)
def quick_abandon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watcher_module, "ABANDON_WAIT", 0.3)


@pytest.fixture
def watcher(pool: Pool, clock: StepClock) -> Watcher:
    return Watcher(pool, NUMBERS, clock, MemberBoard(), RatingStore(pool))


async def test_a_hang_up_in_the_queue_becomes_one_follow_up(watcher: Watcher,
                                                            pool: Pool) -> None:
    for _ in range(2):  # the same abandon twice (a replayed event): one follow-up
        watcher.on_event(ABANDON)
        watcher.on_event({"Event": "Hangup", "Uniqueid": "1795626532.0"})
        await watcher.drain()
    [task] = await pool.list_tasks()
    assert (task.kind, task.number, task.skill, task.source) == (
        TaskKind.OUTBOUND, "+12125550142", "queue:sales", "ami:abandon")
    assert task.attributes["queue"] == "sales"


async def test_a_queue_that_timed_out_into_the_offer_is_no_abandon(watcher: Watcher,
                                                                  pool: Pool) -> None:
    """Recorded on 22.10.1: QueueCallerAbandon, then QUEUESTATUS=TIMEOUT, then (after the
    AGI offer) the Hangup."""
    recorded = messages("abandon-timeout.txt")
    assert [m["Event"] for m in recorded] == ["QueueCallerAbandon", "VarSet", "Hangup"]
    for message in recorded:
        watcher.on_event(message)
    await watcher.drain()
    silent = dict(ABANDON, Uniqueid="2.0")  # neither: the caller went on in the dialplan
    watcher.on_event(silent)
    await watcher.drain()
    assert await pool.list_tasks() == []


async def test_agent_complete_makes_the_call_rateable(watcher: Watcher) -> None:
    watcher.on_event({"Event": "AgentComplete", "Queue": "sales", "MemberName": "agent2",
                      "CallerIDNum": "2125550142", "Uniqueid": "1795626532.0"})
    await watcher.drain()
    assert watcher.ratings is not None
    served = await watcher.ratings.interaction("agi-1795626532.0")
    assert (served.agent_id, served.number, served.skill) == ("agent2", "2125550142", "sales")


async def booked(pool: Pool, clock: StepClock) -> str:
    store = CallbackStore(pool)
    task = dialplan_callback(Caller("sales", "2125550142", T0), "+12125550142", clock.now(),
                             None)
    await store.book_callback(task, policy=NUMBERS, caller_number="2125550142", now=clock.now())
    return task.id


def dial_back(pool: Pool, clock: StepClock, link: FakeLink, agent_first: bool = False, *,
              lock_ttl: float = 30.0, retry: RetryPolicy | None = None) -> QueueDialBack:
    runner = DialBack(CallbackStore(pool, lock_ttl=lock_ttl),
                      retry or RetryPolicy(max_attempts=3, intervals=(60.0,)),
                      NUMBERS, wait_timeout=30, clock=clock)
    return QueueDialBack(link, board(), runner,  # type: ignore[arg-type]
                         DialPlan("pstn", "+12125550100", 10, 2.0), agent_first=agent_first)


NO_SUCH_CHANNEL = {"Response": "Error", "Message": "No such channel"}
CHANNEL_UP = [{"Response": "Success", "EventList": "start"},
              {"Event": "Status", "ChannelStateDesc": "Up"}]


def by_action(**replies: Any) -> Callable[[Mapping[str, Any]], Any]:
    """A reply per AMI action name (a callable is called with the action)."""
    def reply(action: Mapping[str, Any]) -> Any:
        got = replies[str(action["Action"])]
        return got(action) if callable(got) else got
    return reply


async def settle(dialer: QueueDialBack) -> None:
    for _ in range(100):
        if not dialer._live:
            return
        await asyncio.sleep(0.02)


async def test_busy_is_recorded_before_and_after_and_retried_later(pool: Pool,
                                                                   clock: StepClock) -> None:
    task_id = await booked(pool, clock)
    store = CallbackStore(pool)
    seen_before: list[object] = []

    async def reply(action: Mapping[str, Any]) -> Any:
        seen_before.append(await store.get_attempt(task_id, 1))  # recorded before sending
        return originate_response("5")

    link = FakeLink(reply)
    dialer = dial_back(pool, clock, link)
    assert await dialer.tick() == 1
    await settle(dialer)
    [action] = link.sent
    assert action["ChannelId"] == f"cb-{task_id}-1-c"
    assert action["Channel"] == "PJSIP/12125550142@pstn"
    assert f"{dv.TASK_ID}={task_id}" in action["Variable"]
    assert seen_before[0] is not None
    task = await pool.get_task(task_id)
    assert task is not None
    assert (task.state, task.attempts, task.due_at) == (TaskState.SCHEDULED, 1, T0 + 60)
    attempt = await store.get_attempt(task_id, 1)
    assert attempt is not None and attempt.outcome is not None
    assert attempt.outcome.value == "busy"
    assert not await store.dial_lock_held(task_id)


async def test_never_two_dials_of_one_callback_at_once(pool: Pool, clock: StepClock) -> None:
    task_id = await booked(pool, clock)
    gate = asyncio.Event()

    async def reply(action: Mapping[str, Any]) -> Any:
        await gate.wait()
        return originate_response("3")

    link = FakeLink(reply)
    dialer = dial_back(pool, clock, link)
    other = dial_back(pool, clock, link)  # a second `acdkit agi` on the same Redis
    started = await asyncio.gather(dialer.tick(), other.tick(), dialer.tick())
    assert sum(started) == 1
    await asyncio.sleep(0.1)
    assert len(link.sent) == 1
    gate.set()
    await settle(dialer)
    await settle(other)
    task = await pool.get_task(task_id)
    assert task is not None and task.state is TaskState.SCHEDULED


async def test_a_drop_during_the_originate_waits_until_the_channel_is_provably_gone(
        pool: Pool, clock: StepClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Originate's answer is lost in an AMI drop: the outcome is unknown, so nothing is
    retried while Asterisk has the attempt's channel; once it has not, the retry policy."""
    monkeypatch.setattr(dialback_module, "CHECK_EVERY", 0.05)
    task_id = await booked(pool, clock)
    alive = {"now": True}
    link = FakeLink(by_action(Originate=AmiUnavailable("AMI connection lost"),
                              Status=lambda a: CHANNEL_UP if alive["now"] else NO_SUCH_CHANNEL))
    dialer = dial_back(pool, clock, link)
    store = CallbackStore(pool)
    await dialer.tick()
    await asyncio.sleep(0.3)
    attempt = await store.get_attempt(task_id, 1)
    assert attempt is not None and attempt.outcome is None
    task = await pool.get_task(task_id)
    assert task is not None and task.state is TaskState.RESERVED
    assert await store.dial_lock_held(task_id)
    statuses = [a for a in link.sent if a["Action"] == "Status"]
    assert statuses and {a["Channel"] for a in statuses} == {f"cb-{task_id}-1-c"}
    alive["now"] = False
    await settle(dialer)
    attempt = await store.get_attempt(task_id, 1)
    assert attempt is not None and attempt.outcome is DialOutcome.FAILED
    assert attempt.detail == f"AMI connection lost; channel cb-{task_id}-1-c gone"
    task = await pool.get_task(task_id)
    assert task is not None and task.state is TaskState.SCHEDULED  # retried, not lost
    assert [a["Action"] for a in link.sent].count("Originate") == 1


async def test_a_drop_then_a_member_takes_the_customer_is_completed_not_redialed(
        pool: Pool, clock: StepClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dialback_module, "CHECK_EVERY", 0.05)
    task_id = await booked(pool, clock)
    link = FakeLink(by_action(Originate=AmiUnavailable("AMI connection lost"),
                              Status=CHANNEL_UP))
    dialer = dial_back(pool, clock, link)
    await dialer.tick()
    await asyncio.sleep(0.2)
    dialer.on_event({"Event": "AgentConnect", "Uniqueid": f"cb-{task_id}-1-c",
                     "MemberName": "agent2"})
    await settle(dialer)
    task = await pool.get_task(task_id)
    assert task is not None
    assert (task.state, task.outcome) == (TaskState.COMPLETED, "connected to agent2")
    assert [a["Action"] for a in link.sent].count("Originate") == 1


async def test_the_dial_lock_is_renewed_while_an_attempt_waits(pool: Pool,
                                                             clock: StepClock) -> None:
    """An Originate that rings longer than the lock's lifetime: a second `acdkit agi`
    recovering meanwhile sees the lock held and leaves the live attempt alone."""
    task_id = await booked(pool, clock)
    gate = asyncio.Event()

    async def ringing(action: Mapping[str, Any]) -> Any:
        await gate.wait()
        return originate_response("3")

    link = FakeLink(by_action(Originate=ringing, Status=NO_SUCH_CHANNEL))
    dialer = dial_back(pool, clock, link, lock_ttl=0.6)
    other = dial_back(pool, clock, link, lock_ttl=0.6)  # a second (restarted) `acdkit agi`
    assert await dialer.tick() == 1
    await asyncio.sleep(1.5)  # 2.5 lock lifetimes
    assert await other.recover() == 0
    assert await other.tick() == 0
    attempt = await CallbackStore(pool).get_attempt(task_id, 1)
    assert attempt is not None and attempt.outcome is None
    gate.set()
    await settle(dialer)
    task = await pool.get_task(task_id)
    assert task is not None and (task.state, task.attempts) == (TaskState.SCHEDULED, 1)
    assert [a["Action"] for a in link.sent] == ["Originate"]
    assert await CallbackStore(pool).last_attempt_number(task_id) == 1


async def test_answered_then_the_customer_leaves_the_queue_is_retried_not_completed(
        pool: Pool, clock: StepClock) -> None:
    task_id = await booked(pool, clock)
    dialer = dial_back(pool, clock, FakeLink(lambda action: originate_response("4")))
    await dialer.tick()
    await until_state(pool, task_id, TaskState.ACTIVE)
    dialer.on_event({"Event": "QueueCallerAbandon", "Uniqueid": f"cb-{task_id}-1-c",
                     "Queue": "sales"})
    await settle(dialer)
    task = await pool.get_task(task_id)
    assert task is not None
    assert (task.state, task.attempts, task.due_at) == (TaskState.SCHEDULED, 1, T0 + 60)
    attempt = await CallbackStore(pool).get_attempt(task_id, 1)
    assert attempt is not None and attempt.outcome is DialOutcome.ABANDONED
    assert "before a member answered" in attempt.detail


async def test_the_last_attempt_left_in_the_queue_fails_with_a_follow_up(
        pool: Pool, clock: StepClock) -> None:
    task_id = await booked(pool, clock)
    dialer = dial_back(pool, clock, FakeLink(lambda action: originate_response("4")),
                       retry=RetryPolicy(max_attempts=1, intervals=(60.0,), follow_up=True))
    await dialer.tick()
    await until_state(pool, task_id, TaskState.ACTIVE)
    dialer.on_event({"Event": "Hangup", "Uniqueid": f"cb-{task_id}-1-c"})
    await settle(dialer)
    task = await pool.get_task(task_id)
    assert task is not None and task.state is TaskState.FAILED
    assert task.outcome == "abandoned after 1 attempts"
    follow = await pool.get_task(f"{task_id}-fu")
    assert follow is not None and follow.kind is TaskKind.OUTBOUND


async def until_state(pool: Pool, task_id: str, state: TaskState) -> None:
    for _ in range(100):
        task = await pool.get_task(task_id)
        if task is not None and task.state is state:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} never {state}")


async def test_answered_then_a_member_takes_the_customer(pool: Pool, clock: StepClock) -> None:
    task_id = await booked(pool, clock)
    link = FakeLink(lambda action: originate_response("4"))
    dialer = dial_back(pool, clock, link)
    await dialer.tick()
    for _ in range(100):
        task = await pool.get_task(task_id)
        if task is not None and task.state is TaskState.ACTIVE:
            break
        await asyncio.sleep(0.02)
    dialer.on_event({"Event": "DialEnd", "Uniqueid": f"cb-{task_id}-1-c",
                     "DialStatus": "NOANSWER"})  # the queue ringing a member: not the end
    for message in messages("dialback-answered.txt", {"94d6e3f486e946f8": task_id}):
        dialer.on_event(message)  # recorded: member legs hang up, then AgentConnect
    await settle(dialer)
    task = await pool.get_task(task_id)
    assert task is not None
    assert (task.state, task.outcome) == (TaskState.COMPLETED, "connected to agent3")


async def test_agent_first_rings_a_member_then_the_customer(pool: Pool,
                                                           clock: StepClock) -> None:
    task_id = await booked(pool, clock)
    dialer: QueueDialBack

    def reply(action: Mapping[str, Any]) -> Any:
        dialer.on_event({"Event": "DialEnd", "Uniqueid": action["ChannelId"],
                         "DialStatus": "ANSWER"})
        return originate_response("4")

    link = FakeLink(reply)
    dialer = dial_back(pool, clock, link, agent_first=True)
    await dialer.tick()
    await settle(dialer)
    [action] = link.sent
    assert (action["Channel"], action["ChannelId"]) == ("PJSIP/agent1", f"cb-{task_id}-1-a")
    assert f"{dv.DIAL}=PJSIP/12125550142@pstn" in action["Variable"]
    task = await pool.get_task(task_id)
    assert task is not None
    assert (task.state, task.outcome) == (TaskState.COMPLETED, "connected to PJSIP/agent1")




async def test_recovery_after_acdkit_agi_stopped_mid_attempt(pool: Pool,
                                                            clock: StepClock) -> None:
    """A task held by its queue with an attempt that has no outcome (the process died
    between the Originate and its answer): left alone while Asterisk has the attempt's
    channel, then, once it is gone, failed and retried; nothing stays held."""
    task_id = await booked(pool, clock)
    store = CallbackStore(pool)
    assert await store.hold_for_queue(task_id, "ami:sales", clock.now())
    assert await store.open_attempt(task_id, 1, "ami:sales", clock.now(),
                                    number="+12125550142")
    alive = {"now": True}
    link = FakeLink(by_action(Status=lambda a: CHANNEL_UP if alive["now"] and
                              a["Channel"].endswith("-c") else NO_SUCH_CHANNEL))
    dialer = dial_back(pool, clock, link)
    assert await dialer.recover() == 0  # the customer's channel still lives
    task = await pool.get_task(task_id)
    assert task is not None and task.state is TaskState.RESERVED
    alive["now"] = False
    assert await dialer.recover() == 1
    task = await pool.get_task(task_id)
    assert task is not None and task.state is TaskState.SCHEDULED
    attempt = await store.get_attempt(task_id, 1)
    assert attempt is not None and attempt.outcome is DialOutcome.FAILED
    assert attempt.detail == "acdkit agi stopped; channel gone, end not seen"
    assert await dialer.recover() == 0
