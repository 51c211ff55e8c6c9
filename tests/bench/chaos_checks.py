"""What `make chaos` checks once the faults stopped and the center drained: every accepted
callback ended once and was never dialed twice at once, nothing is left reserved, no caller
was left on the line. Each check returns the offending ids with evidence."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from acdkit.core.agents import AgentState
from acdkit.core.tasks import TERMINAL_STATES, TaskState
from acdkit.labkit.siplog import SipMessage
from acdkit.store.callbacks import CallbackStore

Violations = list[dict[str, Any]]
TERMINAL = {s.value for s in TERMINAL_STATES}


async def callbacks_end_once(store: CallbackStore, accepted: Iterable[str]) -> Violations:
    """Each accepted callback exists, is in a terminal state, and its audit stream moved it
    into a terminal state exactly once."""
    found: Violations = []
    for task_id in accepted:
        task = await store.pool.get_task(task_id)
        history = await store.pool.audit.history(task_id)
        if task is None:
            found.append({"id": task_id, "problem": "lost (no task)", "events": len(history)})
            continue
        # Transitions into an end; an update of an ended task's fields ("update", from and
        # to the same state) is not one.
        ends = [e for e in history if e.fields.get("to") in TERMINAL
                and e.fields.get("from") != e.fields.get("to")]
        if task.state.value not in TERMINAL:
            found.append({"id": task_id, "problem": f"not ended: {task.state.value}",
                          "agent": task.agent_id, "attempts": task.attempts,
                          "last": [e.event for e in history[-4:]]})
        elif len(ends) != 1:
            found.append({"id": task_id, "problem": f"{len(ends)} terminal transitions",
                          "to": [e.fields.get("to") for e in ends],
                          "story": [f"{e.ts:.3f} {e.event} {dict(e.fields)}" for e in history]})
        elif not any(e.event == "booked" for e in history):
            found.append({"id": task_id, "problem": "no 'booked' entry in its history"})
    return found


async def attempts_never_overlap(store: CallbackStore, accepted: Iterable[str]) -> Violations:
    """No two dial attempts of one callback were open at the same time (store's record)."""
    found: Violations = []
    for task_id in accepted:
        spans = sorted((a.requested_at, a.ended_at, a.n) for a in await store.attempts(task_id))
        for (_start, end, n), (nxt, _, m) in itertools.pairwise(spans):
            if end is None or nxt < end:
                found.append({"id": task_id, "problem": f"attempt {m} opened at {nxt:.3f} "
                              f"before attempt {n} ended ({end})"})
    return found


def customer_calls_never_overlap(messages: list[SipMessage], number_to_task: dict[str, str],
                                 cuts: list[tuple[float, float]]) -> Violations:
    """From the customers' SIPp log: no number had two calls up at the same time. A call
    that never ended while Asterisk was down for a cut (``cuts``: its start and end) ended
    with the node: Asterisk killed sends no BYE, and the customer's own BYE finds nobody."""
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for call_id, (user, start, end) in call_spans(messages, received=True).items():
        if end == float("inf"):
            end = min((down for down, back in cuts if back > start), default=end)
        spans[user].append((start, end, call_id))
    found: Violations = []
    for user, calls in spans.items():
        calls.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(calls):
            if start < end:
                found.append({"id": number_to_task.get(user, user), "number": user,
                              "problem": f"two calls up at once: {a} and {b}"})
    return found


def call_spans(messages: list[SipMessage], *, received: bool,
               until: float | None = None) -> dict[str, tuple[str, float, float]]:
    """Call-ID → (user, first INVITE time, end time) of the calls a SIPp log shows; a call
    that never ended ends at ``until`` (inf without it). ``received``: INVITEs that came in
    (a UAS) rather than sent (a UAC); the user is the Request-URI's (UAS) or From's (UAC)."""
    from acdkit.labkit.siplog import _uri_user

    starts: dict[str, tuple[str, float]] = {}
    ends: dict[str, float] = {}
    for m in messages:
        if m.method == "INVITE" and m.sent != received and m.call_id not in starts \
                and ";tag=" not in m.headers.get("to", ""):
            user = m.request_user if received else _uri_user(m.headers.get("from", ""))
            starts[m.call_id] = (user, m.time)
        elif m.method == "BYE" or (m.status is not None and (m.cseq_method == "BYE" or (
                m.cseq_method == "INVITE" and m.status >= 300))):
            ends.setdefault(m.call_id, m.time)  # a hang-up (a BYE sent or received) ends it
    last = float("inf") if until is None else until
    return {c: (u, t, ends.get(c, last)) for c, (u, t) in starts.items()}


def callers_left_on_line(messages: list[SipMessage],
                         cuts: list[tuple[float, float]]) -> tuple[Violations, int]:
    """Caller calls still up at the end. Calls up across an Asterisk restart (its channels
    die with it, with or without a BYE) are counted apart, not as violations."""
    found: Violations = []
    cut = 0
    for call_id, (user, start, end) in call_spans(messages, received=False).items():
        if end != float("inf"):
            continue
        if any(start < restart_end for _, restart_end in cuts):
            cut += 1
            continue
        found.append({"id": call_id, "caller": user, "problem": "caller still on the line",
                      "since": round(start, 3)})
    return found, cut


def channels_left(channels: list[dict[str, Any]]) -> Violations:
    return [{"id": c.get("id"), "name": c.get("name"), "state": c.get("state"),
             "caller": (c.get("caller") or {}).get("number"),
             "app": c.get("dialplan", {}).get("app_name"),
             "problem": "channel left on Asterisk after the drain"} for c in channels]


async def nothing_left_reserved(store: CallbackStore, now: float) -> Violations:
    """After the drain (no call up): no agent reserved or on a call, no task reserved or
    active (live calls included)."""
    found: Violations = []
    for agent in await store.pool.list_agents():
        if agent.state in (AgentState.RESERVED, AgentState.ON_CALL):
            found.append({"id": f"agent:{agent.id}", "problem": f"agent left {agent.state.value}",
                          "task": agent.task_id, "for_s": round(now - agent.state_since, 1)})
    for task in await store.pool.list_tasks(limit=100_000):
        if task.state in (TaskState.RESERVED, TaskState.ACTIVE):
            found.append({"id": task.id, "kind": task.kind.value, "agent": task.agent_id,
                          "problem": f"task left {task.state.value}"})
        elif task.state is TaskState.QUEUED and task.kind.value == "call":
            found.append({"id": task.id, "kind": "call", "channel": task.channel_id,
                          "problem": "live-call task still queued, no caller on the line"})
    return found
