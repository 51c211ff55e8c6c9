"""`make chaos` reads SIPp logs to find numbers rung twice at once and callers left on the
line: those readings, on hand-made message lists."""

from __future__ import annotations

from tests.bench.chaos_checks import callers_left_on_line, customer_calls_never_overlap

from acdkit.labkit.siplog import SipMessage


def invite(t: float, call_id: str, user: str, *, sent: bool) -> SipMessage:
    return SipMessage(t, sent, f"INVITE sip:{user}@127.0.0.4:5080 SIP/2.0",
                      {"call-id": call_id, "from": f"<sip:{user}@127.0.0.2>;tag=x",
                       "to": f"<sip:{user}@127.0.0.1>", "cseq": "1 INVITE"})


def bye_ok(t: float, call_id: str, *, sent: bool) -> SipMessage:
    return SipMessage(t, sent, "SIP/2.0 200 OK", {"call-id": call_id, "cseq": "2 BYE"})


def test_two_calls_to_one_number_at_once_are_found_and_one_after_the_other_is_fine() -> None:
    log = [invite(1.0, "a", "12125551001", sent=False), invite(2.0, "b", "12125551001",
                                                                 sent=False),
           bye_ok(3.0, "a", sent=True), bye_ok(4.0, "b", sent=True),
           invite(5.0, "c", "12125551002", sent=False), bye_ok(6.0, "c", sent=True),
           invite(7.0, "d", "12125551002", sent=False), bye_ok(8.0, "d", sent=True)]
    found = customer_calls_never_overlap(log, {"12125551001": "chaos-1"}, cuts=[])
    assert [(f["id"], f["number"]) for f in found] == [("chaos-1", "12125551001")]


def test_a_call_that_died_with_a_stopped_asterisk_does_not_overlap_the_next_one() -> None:
    """Asterisk killed during a call sends no BYE: the call ended with the node (cut 10-40),
    so a redial at 50 is not a second call at once; without that cut it would be one."""
    log = [invite(5.0, "a", "12125551003", sent=False),
           invite(50.0, "b", "12125551003", sent=False), bye_ok(55.0, "b", sent=True)]
    assert customer_calls_never_overlap(log, {}, cuts=[(10.0, 40.0)]) == []
    assert len(customer_calls_never_overlap(log, {}, cuts=[])) == 1


def test_a_bye_without_answer_still_ends_the_call() -> None:
    bye = SipMessage(3.0, True, "BYE sip:x@127.0.0.1 SIP/2.0", {"call-id": "a", "cseq": "2 BYE"})
    log = [invite(1.0, "a", "12125551004", sent=False), bye,
           invite(4.0, "b", "12125551004", sent=False), bye_ok(6.0, "b", sent=True)]
    assert customer_calls_never_overlap(log, {}, cuts=[]) == []


def test_a_caller_never_hung_up_is_left_on_the_line_unless_asterisk_restarted_meanwhile() -> None:
    log = [invite(1.0, "a", "91", sent=True), bye_ok(2.0, "a", sent=False),
           invite(10.0, "b", "92", sent=True), invite(30.0, "c", "93", sent=True)]
    found, cut = callers_left_on_line(log, cuts=[(15.0, 20.0)])
    assert [f["caller"] for f in found] == ["93"]
    assert cut == 1
