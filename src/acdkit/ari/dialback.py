"""Dial-back, agent first: the Stasis side of a callback attempt.

The ``dial_back`` job (services/dial_back.py) owns the attempt and its outcome; it asks this process
to run attempt *n* through the command list (store/callbacks.py). Here: ring the reserved
agent, whisper the number, then call the customer with the center's caller ID on a fixed
channel id (a second dial of the same attempt is refused by Asterisk), bridge both, and report
the outcome. The call then ends like any other: the task completes when either side leaves.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from acdkit.ari import events as ev
from acdkit.ari.agents import answered
from acdkit.ari.media import name_media
from acdkit.ari.session import ChannelGone, Session
from acdkit.core.agents import AgentEvent
from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import AcdError
from acdkit.core.numbers import dial_string
from acdkit.core.prompts import say_digits
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.store.outbound import drop_follow_ups, forget_follow_up

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)

# Q.850 causes Asterisk reports when an outgoing call ends before answer (seen on 22.10.1).
_BUSY = frozenset({17})
_NO_ANSWER = frozenset({16, 18, 19, 20, 31})
# Outbound sources → the ob-reason-* prompt of the whisper (anything else: a lead).
_OB_REASONS = (("missed-call", "missed"), ("ami:*", "missed"), ("callback-failed", "callback"),
               ("agent*", "agent"))


def whisper_of(task: Task, digits: int, name: Sequence[str] = ()) -> list[str]:
    """What the agent hears before the customer is dialed: a callback and its number, or an
    outbound task, the customer's ``name`` (media that speaks it), why it exists (its
    source), which attempt this is and the number."""
    if task.kind is not TaskKind.OUTBOUND:
        return ["sound:acdkit/whisper-callback", *say_digits(task.number, digits)]
    reason = next((r for p, r in _OB_REASONS if fnmatch.fnmatchcase(task.source, p)), "lead")
    return ["sound:acdkit/ob-whisper", *name, f"sound:acdkit/ob-reason-{reason}",
            "sound:acdkit/ob-attempt", f"number:{task.attempts + 1}",
            *say_digits(task.number, digits)]


def outcome_of_cause(cause: int) -> DialOutcome:
    if cause in _BUSY:
        return DialOutcome.BUSY
    if cause in _NO_ANSWER:
        return DialOutcome.NO_ANSWER
    return DialOutcome.FAILED


async def run_commands(app: StasisApp) -> None:
    """Take dial-back commands from the jobs, one flow each."""
    while True:
        command = await app.callbacks.next_command(5.0)
        if command is None:
            continue
        if command.get("op") == "dial_back":
            app.spawn(dial_back(app, command), f"dial-back {command.get('task_id')}")
        elif command.get("op") == "deliver_reply":
            from acdkit.ari.reply_delivery import deliver_reply

            app.spawn(deliver_reply(app, command), f"reply {command.get('task_id')}")
        elif command.get("op") == "snoop":  # from the supervisor page (web/supervisor.py)
            from acdkit.ari.snoop import snoop

            app.spawn(snoop(app, command), f"snoop {command.get('id')}")
        else:
            log.warning("unknown command %r", command)


async def dial_back(app: StasisApp, command: dict[str, Any]) -> None:
    task_id, attempt = str(command["task_id"]), int(command["attempt"])
    try:
        outcome, dialed = await _attempt(app, task_id, attempt, str(command.get("agent_id", "")))
    except AcdError as exc:
        log.warning("callback %s attempt %s failed: %s", task_id, attempt, exc)
        outcome, dialed = DialOutcome.FAILED, True
    if outcome is not None:
        await app.callbacks.finish_attempt(task_id, attempt, outcome, app.clock.now(),
                                           dialed=dialed)


async def _attempt(app: StasisApp, task_id: str, n: int,
                   agent_id: str) -> tuple[DialOutcome | None, bool]:
    """Run attempt ``n``; its outcome (None once answered: already reported) and whether the
    customer was dialed. The agent's state after a miss is ours; after a customer who did not
    answer it is the job's, which settles task and agent in one step."""
    if not await _still_wanted(app, task_id, n, agent_id):
        return DialOutcome.FAILED, False
    task = await app.pool.get_task(task_id)
    agent = await app.pool.get_agent(agent_id)
    if task is None or agent is None:
        return DialOutcome.FAILED, False
    connector, center = app.connector, app.settings.center
    await app.callbacks.update_attempt(task_id, n, state="ringing_agent")
    leg = await connector.reach_agent(agent, task.id, center.caller_id,
                                      leg_id=f"cb-{task_id}-{n}-a")
    if leg is None:
        await connector.move_agent(agent.id, AgentEvent.NO_ANSWER)
        app.after_wrap_up(agent.id)
        return DialOutcome.AGENT_NO_ANSWER, False
    name = name_media(app.settings.requests, task)
    await connector.whisper(leg, whisper_of(task, app.settings.agents.whisper_digits, name))
    if not await _still_wanted(app, task_id, n, agent_id):  # the job gave up meanwhile
        await _drop_leg(app, agent.id, leg)
        return DialOutcome.FAILED, False
    await app.callbacks.update_attempt(task_id, n, state="ringing_customer")
    customer_id = f"cb-{task_id}-{n}-c"
    customer = app.sessions.open(Session(customer_id, app.control, caller_number=task.number))
    outcome = await _ring_customer(app, customer, task.number)
    if outcome is not DialOutcome.ANSWERED:
        app.sessions.close(customer_id)
        await _drop_leg(app, agent.id, leg)
        return outcome, True
    call = app.calls.open(task_id, customer)
    call.taken.set()
    call.agent_id, call.agent_leg = agent.id, leg.channel_id
    # Active before the job hears "answered": a held callback with an answered attempt is
    # never dialed again, and an active one belongs to this call until it ends. The watcher
    # starts after the bridge: a customer who already hung up is seen at once.
    await connector.bridge(agent, task, call, leg)
    app.spawn(watch_customer(app, call), f"callback {task_id}")
    await app.callbacks.update_attempt(task_id, n, state="connected")
    await app.callbacks.finish_attempt(task_id, n, DialOutcome.ANSWERED, app.clock.now())
    if task.kind is TaskKind.CALLBACK:  # reached: a pending follow-up of the number is moot
        await drop_follow_ups(app.pool, task.number, app.clock.now(), "called back")
    await app.control.play(customer_id, "sound:acdkit/cb-hello")
    return None, True


async def _still_wanted(app: StasisApp, task_id: str, n: int, agent_id: str) -> bool:
    """The job still waits for this attempt and the task is still reserved for the agent."""
    attempt = await app.callbacks.get_attempt(task_id, n)
    task = await app.pool.get_task(task_id)
    wanted = (attempt is not None and attempt.outcome is None and task is not None
              and task.state is TaskState.RESERVED and task.agent_id == agent_id)
    if not wanted:
        log.info("callback %s attempt %s: no longer wanted, not dialing", task_id, n)
    return wanted


async def _drop_leg(app: StasisApp, agent_id: str, leg: Session) -> None:
    """Hang up a per-call agent leg; a persistent line stays up for the next task."""
    if agent_id not in app.connector.lines:
        await app.control.hangup(leg.channel_id)


async def _ring_customer(app: StasisApp, customer: Session, number: str) -> DialOutcome:
    center = app.settings.center
    timeout = app.settings.agents.ring_timeout * 2
    try:
        created = await app.control.originate(
            dial_string(number, center.trunk), customer.channel_id,
            app_args=f"callback-customer,{customer.channel_id}",
            caller_id=center.caller_id or None, timeout=int(timeout))
        if created is None:
            return DialOutcome.FAILED
        if await answered(customer, timeout + 5) is None:
            await app.control.hangup(customer.channel_id)
            return DialOutcome.NO_ANSWER
        return DialOutcome.ANSWERED
    except ChannelGone:
        return _cause_outcome(customer)


def _cause_outcome(customer: Session) -> DialOutcome:
    while not customer.queue.empty():
        event = customer.queue.get_nowait()
        if isinstance(event, ev.ChannelDestroyed):
            return outcome_of_cause(event.cause)
    return DialOutcome.NO_ANSWER


async def watch_customer(app: StasisApp, call: Any) -> None:
    try:
        await call.customer.hung_up.wait()
    finally:
        await app.connector.customer_left(call)
        app.calls.close(call.task_id)
        app.sessions.close(call.customer.channel_id)
        task = await app.pool.get_task(call.task_id)
        if task is not None:
            await app.callbacks.forget_callback(task)
            await forget_follow_up(app.pool, task)

