"""Audit events → Asterisk queue_log lines: verbs, order and field meanings of app_queue."""

from __future__ import annotations

from test_kpis import agent, task

from acdkit.core.queue_log import QueueLog


def lines(*events):  # type: ignore[no-untyped-def]
    log = QueueLog(lambda a: ["sales"])
    return [line.text() for e in events for line in log.lines(e)]


def call(event: str, ts: float, **f: str):  # type: ignore[no-untyped-def]
    return task(ts, event, "t1", enq="100", chan="1700.5", **f)


def test_answered_after_a_missed_ring() -> None:
    assert lines(
        call("add", 100, pos="2", number="+12125550100"),
        call("reserve", 103, agent="agent1"),
        call("release", 118, agent="agent1", **{"from": "reserved"}),
        call("reserve", 119, agent="agent2"),
        call("connect", 123, agent="agent2"),
        call("complete", 183, agent="agent2", outcome="customer hung up"),
    ) == [
        "100|1700.5|sales|NONE|ENTERQUEUE||+12125550100|2",
        "118|1700.5|sales|agent1|RINGNOANSWER|15000",  # ring time in ms
        "123|1700.5|sales|agent2|CONNECT|23||4",  # holdtime, agent leg, ring time
        "183|1700.5|sales|agent2|COMPLETECALLER|23|60|2",  # holdtime, talk, first position
    ]


def test_left_the_line() -> None:
    assert lines(call("add", 100), call("abandon", 112, pos="1")) == [
        "100|1700.5|sales|NONE|ENTERQUEUE|||1", "112|1700.5|sales|NONE|ABANDON|1|1|12"]
    assert lines(call("add", 100), call("expire", 160, outcome="max_wait"))[-1] == \
        "160|1700.5|sales|NONE|EXITWITHTIMEOUT|1|1|60"
    assert lines(call("add", 100), call("cancel", 130, outcome="caller chose callback cb1"))[-1] \
        == "130|1700.5|sales|NONE|EXITCALLBACK|1|1|30|cb1"
    assert lines(call("complete", 100, agent="agent1")) == []  # a call it never saw enter
    assert lines(call("add", 100), call("reserve", 101, agent="agent1"),
                 call("abandon", 104, agent="agent1", **{"from": "reserved"}))[1:] == [
        "104|1700.5|sales|agent1|RINGCANCELED|3000", "104|1700.5|sales|NONE|ABANDON|1|1|4"]


def test_agent_verbs() -> None:
    assert lines(
        agent(10, "login", "agent1", "logged_out", "ready"),
        agent(20, "pause", "agent1", "ready", "paused", reason="lunch"),
        agent(30, "resume", "agent1", "paused", "ready", paused_for="lunch"),
        agent(40, "logout", "agent1", "ready", "logged_out"),
    ) == ["10|NONE|sales|agent1|ADDMEMBER|", "20|NONE|sales|agent1|PAUSE|lunch",
          "30|NONE|sales|agent1|UNPAUSE|", "40|NONE|sales|agent1|REMOVEMEMBER|"]


def test_callback_verbs() -> None:
    cb = [task(100, "add", "cb1", "callback", to="scheduled", created="100"),
          task(200, "reschedule", "cb1", "callback", attempts="1", agent="agent1"),
          task(300, "connect", "cb1", "callback", attempts="1", agent="agent1", created="100"),
          task(360, "complete", "cb1", "callback", attempts="2", agent="agent1")]
    assert lines(*cb) == ["100|cb1|sales|NONE|CALLBACKBOOKED|scheduled",
                          "200|cb1|sales|agent1|CALLBACKRETRY|1",
                          "300|cb1|sales|agent1|CALLBACKCONNECT|200|1",
                          "360|cb1|sales|agent1|CALLBACKCOMPLETE|2"]
