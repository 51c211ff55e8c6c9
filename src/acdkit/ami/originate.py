"""Dialplan-mode dial-back as AMI actions (pure: build the action, read the outcome).

Customer first (default): ``Originate`` to the customer through the admin's trunk into
``acdkit-callback-queue``, which puts the answered customer into ``Queue()`` ahead of new
callers (``QUEUE_PRIO`` = ``ACDKIT_PRIORITY``). Agent first: ``Originate`` to a free queue
member into ``acdkit-callback-agent-first``, which dials the customer (``ACDKIT_DIAL``, a
dial string acdkit built from the validated number) once the member answered.

Every attempt has its own ``ChannelId`` (``store.callbacks.agent_leg``): panoramisk re-sends
actions that were in flight when the connection dropped, and Asterisk refuses a second
channel with an id in use (docs/architecture.md §7), so a re-sent Originate cannot ring twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from acdkit import dialplan_vars as dv
from acdkit.core.callbacks import DialOutcome
from acdkit.core.numbers import dial_string
from acdkit.core.tasks import Task

# OriginateResponse "Reason" (AST_CONTROL_* of the outgoing channel), seen on 22.10.1.
_REASONS = {"4": DialOutcome.ANSWERED, "5": DialOutcome.BUSY, "3": DialOutcome.NO_ANSWER,
            "1": DialOutcome.NO_ANSWER, "8": DialOutcome.FAILED, "0": DialOutcome.FAILED}
# DialEnd "DialStatus" of the customer leg in the agent-first variant.
_DIAL_STATUS = {"ANSWER": DialOutcome.ANSWERED, "BUSY": DialOutcome.BUSY,
                "NOANSWER": DialOutcome.NO_ANSWER, "CANCEL": DialOutcome.NO_ANSWER}


@dataclass(frozen=True)
class DialPlan:
    """Where a dial-back goes: the center's trunk and caller ID, the queue priority, the
    ring time; ``member`` (an interface) for the agent-first variant."""

    trunk: str
    caller_id: str
    priority: int = 10
    ring_timeout: float = 30.0
    keep_plus: bool = False


def originate_action(task: Task, queue: str, channel_id: str, plan: DialPlan,
                     member: str | None = None) -> dict[str, str | Sequence[str]]:
    """The ``Originate`` action of one attempt (``Async``: the outcome comes as an
    ``OriginateResponse`` with the same ActionID). Raises ``NumberRejected``/``ConfigError``
    (``numbers.dial_string``) for a number or trunk that cannot go into a dial string."""
    customer = dial_string(task.number, plan.trunk, keep_plus=plan.keep_plus)
    variables = [f"{dv.QUEUE}={queue}", f"{dv.TASK_ID}={task.id}",
                 f"{dv.PRIORITY}={plan.priority}"]
    action: dict[str, str | Sequence[str]] = {
        "Action": "Originate", "Exten": "s", "Priority": "1", "Async": "true",
        "ChannelId": channel_id, "Timeout": str(int(plan.ring_timeout * 1000))}
    if member is None:
        action.update(Channel=customer, Context=dv.CALLBACK_QUEUE_CONTEXT,
                      CallerID=plan.caller_id or "acdkit")
    else:
        variables += [f"{dv.DIAL}={customer}", f"{dv.CALLER_ID}={plan.caller_id}"]
        action.update(Channel=member, Context=dv.CALLBACK_AGENT_FIRST_CONTEXT,
                      CallerID=f'"callback" <{task.number[1:]}>')
    action["Variable"] = variables
    return action


def outcome_of_reply(reply: object) -> tuple[DialOutcome, str]:
    """The outcome of an ``Originate``: the ``OriginateResponse`` among the replies
    (panoramisk gives a list for an async originate), else the refusal itself."""
    messages = list(reply) if isinstance(reply, list | tuple) else [reply]
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("Event") == "OriginateResponse":
            reason = str(message.get("Reason", "0"))
            return _REASONS.get(reason, DialOutcome.FAILED), f"reason {reason}"
    first = messages[0] if messages and isinstance(messages[0], Mapping) else {}
    return DialOutcome.FAILED, str(first.get("Message", "no OriginateResponse"))[:120]


def outcome_of_dial_status(status: str) -> DialOutcome:
    """The customer leg's outcome from ``DialEnd``'s ``DialStatus``."""
    return _DIAL_STATUS.get(status.upper(), DialOutcome.FAILED)


def channel_status(reply: object) -> bool | None:
    """Whether Asterisk has the channel asked for by an AMI ``Status`` action (``Channel``
    takes a channel's name or its uniqueid, the ChannelId we gave it): True, False for
    "No such channel", None when the reply says neither (the answer is unknown)."""
    messages = list(reply) if isinstance(reply, list | tuple) else [reply]
    first = messages[0] if messages and isinstance(messages[0], Mapping) else {}
    if str(first.get("Response", "")).lower() == "success":
        return True
    if "no such channel" in str(first.get("Message", "")).lower():
        return False
    return None
