"""Audit events as Asterisk ``queue_log`` lines (docs/kpis.md, "queue_log").

``time|callid|queue|agent|verb|data1|data2|...`` with app_queue's verbs and field meanings
for calls (queue = skill, callid = the caller's channel uniqueid, agent = the agent id, as
app_queue writes with ``log_membername_as_agent``), and verbs of acdkit's own for what
app_queue has no word for (callbacks, leaving the line for a callback or a voice request).

``QueueLog.lines(event)`` keeps what later lines need (when a call entered, was rung,
connected; its first position) per task, and forgets it when the task ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from acdkit.core.kpi_journal import Event

NONE = "NONE"


@dataclass
class _Call:
    callid: str
    enq: float
    origpos: str = "1"
    rung_at: float | None = None
    connected_at: float | None = None


@dataclass(frozen=True)
class Line:
    time: int
    callid: str
    queue: str
    agent: str
    verb: str
    data: tuple[str, ...] = ()

    def text(self) -> str:
        return "|".join([str(self.time), self.callid, self.queue, self.agent, self.verb,
                         *self.data])


def _secs(value: float) -> str:
    return str(max(0, round(value)))


@dataclass
class QueueLog:
    """Turns events (oldest first) into lines. ``skills_of(agent)`` names the queues an agent
    belongs to (for ADDMEMBER, PAUSE...)."""

    skills_of: Callable[[str], Sequence[str]]
    calls: dict[str, _Call] = field(default_factory=dict)

    def lines(self, e: Event) -> list[Line]:
        if e["kind"] == "agent":
            return self._agent(e)
        if e["kind"] != "task":
            return []
        kind = e.get("tkind", "")
        if kind == "call":
            return self._call(e)
        if kind == "callback":
            return self._callback(e)
        return []

    def _call(self, e: Event) -> list[Line]:
        f, now = e, int(e["ts"])
        skill, agent = f.get("skill", ""), f.get("agent", "") or NONE
        if e["event"] == "add":
            new = self.calls[e["entity"]] = _Call(f.get("chan") or e["entity"],
                                               float(f.get("enq") or e["ts"]), f.get("pos") or "1")
            return [Line(now, new.callid, skill, NONE, "ENTERQUEUE",
                         ("", f.get("number", ""), new.origpos))]
        call = self.calls.get(e["entity"])
        if call is None:
            return []
        wait = _secs(e["ts"] - call.enq)
        if e["event"] == "reserve":
            call.rung_at = e["ts"]
        elif e["event"] == "release" and f.get("from") == "reserved":
            rang = 0.0 if call.rung_at is None else e["ts"] - call.rung_at
            return [Line(now, call.callid, skill, agent, "RINGNOANSWER",
                         (str(round(rang * 1000)),))]
        elif e["event"] == "connect":
            call.connected_at = e["ts"]
            rang = 0.0 if call.rung_at is None else e["ts"] - call.rung_at
            return [Line(now, call.callid, skill, agent, "CONNECT", (wait, "", _secs(rang)))]
        elif e["event"] == "complete":
            del self.calls[e["entity"]]
            verb = "COMPLETECALLER" if "customer" in f.get("outcome", "") else "COMPLETEAGENT"
            talk = e["ts"] - (call.connected_at or e["ts"])
            held = (call.connected_at or e["ts"]) - call.enq
            return [Line(now, call.callid, skill, agent, verb,
                         (_secs(held), _secs(talk), call.origpos))]
        elif e["event"] in ("abandon", "expire", "cancel"):
            del self.calls[e["entity"]]
            rang = [] if f.get("from") != "reserved" or call.rung_at is None else [
                Line(now, call.callid, skill, agent, "RINGCANCELED",
                     (str(round((e["ts"] - call.rung_at) * 1000)),))]
            return [*rang, self._left(e, call, wait)]
        return []

    def _left(self, e: Event, call: _Call, wait: str) -> Line:
        f = e
        outcome = f.get("outcome", "")
        verb = {"abandon": "ABANDON", "expire": "EXITWITHTIMEOUT"}.get(e["event"]) or (
            "EXITCALLBACK" if "callback" in outcome else
            "EXITVOICEREQUEST" if "voice request" in outcome else "EXITCANCELLED")
        data: tuple[str, ...] = (f.get("pos") or call.origpos, call.origpos, wait)
        if verb == "EXITCALLBACK":
            data = (*data, outcome.rsplit(" ", 1)[-1])  # the callback's task id
        return Line(int(e["ts"]), call.callid, f.get("skill", ""), NONE, verb, data)

    def _callback(self, e: Event) -> list[Line]:
        f, now = e, int(e["ts"])
        skill, agent, attempts = f.get("skill", ""), f.get("agent") or NONE, f.get("attempts", "0")
        created = float(f.get("created") or e["ts"])
        verbs: Mapping[str, tuple[str, tuple[str, ...]]] = {
            "add": ("CALLBACKBOOKED", (f.get("to", ""),)),
            "connect": ("CALLBACKCONNECT", (_secs(e["ts"] - created), attempts)),
            "reschedule": ("CALLBACKRETRY", (attempts,)),
            "complete": ("CALLBACKCOMPLETE", (attempts,)),
            "fail": ("CALLBACKFAILED", (attempts, f.get("outcome", ""))),
            "expire": ("CALLBACKEXPIRED", (attempts, f.get("outcome", ""))),
            "cancel": ("CALLBACKCANCELLED", (f.get("outcome", ""),)),
        }
        if e["event"] not in verbs:
            return []
        verb, data = verbs[e["event"]]
        return [Line(now, e["entity"], skill, agent, verb,
                     tuple(d.replace("|", "/") for d in data))]

    def _agent(self, e: Event) -> list[Line]:
        f, now = e, int(e["ts"])
        frm, to = f.get("from", ""), f.get("to", "")
        if frm in ("", "logged_out"):  # a new agent's record, or a login
            if to in ("", "logged_out"):
                return []
            verb, data = "ADDMEMBER", ("",)
        elif to == "logged_out":
            verb, data = "REMOVEMEMBER", ("",)
        elif to == "paused" and frm != "paused":
            verb, data = "PAUSE", (f.get("reason", ""),)
        elif frm == "paused" and to != "paused":
            verb, data = "UNPAUSE", ("",)
        else:
            return []
        return [Line(now, NONE, skill, e["entity"], verb, data)
                for skill in self.skills_of(e["entity"])]
