"""AMI in dialplan mode without a socket: member availability replayed from a QueueStatus
reply recorded on the lab (tests/unit/fixtures/ami/), the Originate of a dial-back and its
outcome, as panoramisk parses them."""

from __future__ import annotations

from pathlib import Path

import pytest
from panoramisk.message import Message

from acdkit import dialplan_vars as dv
from acdkit.ami.originate import (
    DialPlan,
    originate_action,
    outcome_of_dial_status,
    outcome_of_reply,
)
from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import NumberRejected
from acdkit.core.members import MemberBoard
from acdkit.core.tasks import Task, TaskKind

FIXTURES = Path(__file__).parent / "fixtures" / "ami"


def messages(name: str) -> list[Message]:
    """The AMI messages of a recorded transcript, parsed by panoramisk."""
    text = (FIXTURES / name).read_text().replace("\r\n", "\n")
    return [m for m in (Message.from_line(block.strip().replace("\n", "\r\n"))
                        for block in text.split("\n\n") if block.strip()) if m is not None]


def board_of(name: str) -> MemberBoard:
    board = MemberBoard()
    for message in messages(name):
        board.apply(message)
    return board


def test_queue_status_fills_the_board() -> None:
    board = board_of("queuestatus-sales.txt")
    assert board.queues() == {"sales"}
    assert [(m.name, m.interface, m.state) for m in board.free("sales")] == [
        ("agent1", "PJSIP/agent1", "NOT_INUSE"), ("agent2", "PJSIP/agent2", "NOT_INUSE"),
        ("agent3", "PJSIP/agent3", "NOT_INUSE")]


def test_device_state_pause_and_removal_change_who_is_free() -> None:
    board = board_of("queuestatus-sales.txt")
    board.apply({"Event": "DeviceStateChange", "Device": "PJSIP/agent1", "State": "INUSE"})
    board.apply({"Event": "QueueMemberPause", "Queue": "sales", "MemberName": "agent2",
                 "Interface": "PJSIP/agent2", "Paused": "1"})
    assert [m.name for m in board.free("sales")] == ["agent3"]
    board.apply({"Event": "QueueMemberStatus", "Queue": "sales", "MemberName": "agent1",
                 "Interface": "PJSIP/agent1", "StateInterface": "PJSIP/agent1",
                 "Status": "1", "Paused": "0"})
    board.apply({"Event": "QueueMemberRemoved", "Queue": "sales", "Interface": "PJSIP/agent3"})
    assert [m.name for m in board.free("sales")] == ["agent1"]
    assert board.members("sales")[1].paused is True
    board.clear()
    assert board.queues() == set()


def _task(number: str = "+12125550142") -> Task:
    return Task(id="t1", kind=TaskKind.CALLBACK, skill="queue:sales", created_at=0.0,
                enqueued_at=0.0, number=number)


PLAN = DialPlan(trunk="pstn", caller_id="+12125550100", priority=10, ring_timeout=30)


def test_customer_first_originate_goes_into_the_callback_queue_context() -> None:
    action = originate_action(_task(), "sales", "cb-t1-1-c", PLAN)
    assert action["Channel"] == "PJSIP/12125550142@pstn"
    assert (action["Context"], action["Exten"], action["Priority"]) == (
        dv.CALLBACK_QUEUE_CONTEXT, "s", "1")
    assert (action["ChannelId"], action["Async"], action["Timeout"]) == (
        "cb-t1-1-c", "true", "30000")
    assert list(action["Variable"]) == ["ACDKIT_QUEUE=sales", "ACDKIT_TASK_ID=t1",
                                        "ACDKIT_PRIORITY=10"]
    assert action["CallerID"] == "+12125550100"


def test_agent_first_originate_rings_the_member_and_carries_the_dial_string() -> None:
    action = originate_action(_task(), "sales", "cb-t1-1-a", PLAN, member="PJSIP/agent2")
    assert (action["Channel"], action["Context"]) == ("PJSIP/agent2",
                                                      dv.CALLBACK_AGENT_FIRST_CONTEXT)
    assert "ACDKIT_DIAL=PJSIP/12125550142@pstn" in action["Variable"]


def test_a_number_that_is_not_e164_never_reaches_an_originate() -> None:
    for number in ("12125550142", "+1212&555", "+1212555/0142@x"):
        with pytest.raises(NumberRejected):
            originate_action(_task(number), "sales", "cb-t1-1-c", PLAN)


def _reply(*blocks: dict[str, str]) -> list[Message]:
    return [Message(block) for block in blocks]


@pytest.mark.parametrize(("reason", "outcome"), [
    ("4", DialOutcome.ANSWERED), ("5", DialOutcome.BUSY), ("3", DialOutcome.NO_ANSWER),
    ("8", DialOutcome.FAILED), ("0", DialOutcome.FAILED), ("99", DialOutcome.FAILED)])
def test_originate_response_reasons(reason: str, outcome: DialOutcome) -> None:
    reply = _reply({"Response": "Success", "Message": "Originate successfully queued"},
                   {"Event": "OriginateResponse", "Response": "Success", "Reason": reason,
                    "Uniqueid": "cb-t1-1-c"})
    assert outcome_of_reply(reply) == (outcome, f"reason {reason}")


def test_a_refused_originate_is_a_failure_with_asterisks_words() -> None:
    refused = Message({"Response": "Error", "Message": "Originate failed"})
    assert outcome_of_reply(refused) == (DialOutcome.FAILED, "Originate failed")


def test_dial_status_of_the_customer_leg() -> None:
    assert outcome_of_dial_status("ANSWER") is DialOutcome.ANSWERED
    assert outcome_of_dial_status("busy") is DialOutcome.BUSY
    assert outcome_of_dial_status("NOANSWER") is DialOutcome.NO_ANSWER
    assert outcome_of_dial_status("CHANUNAVAIL") is DialOutcome.FAILED


def test_the_recorded_originate_response_is_answered_on_its_channel_id() -> None:
    """Recorded on 22.10.1: the async Originate's answer carries the ChannelId as Uniqueid,
    and app_queue's AgentConnect names the same id for the dialled-back customer."""
    recorded = messages("dialback-answered.txt")
    response = next(m for m in recorded if m["Event"] == "OriginateResponse")
    assert outcome_of_reply([Message({"Response": "Success"}), response]) == (
        DialOutcome.ANSWERED, "reason 4")
    connect = next(m for m in recorded if m["Event"] == "AgentConnect")
    assert response["Uniqueid"] == connect["Uniqueid"] == "cb-94d6e3f486e946f8-1-c"
    assert connect["MemberName"] == "agent3"
