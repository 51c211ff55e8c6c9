"""Delivering a reply by a call: the serve side of the ``deliver_reply`` job.

The job (services/voice_requests.py) owns the attempt, as ``dial_back`` does
(store/callbacks.py); here, for the command ``{"op": "deliver_reply", "task_id", "attempt",
"number"}``: call the customer with the center's caller ID on the fixed channel id
``vr-<task_id>-<n>-c`` (a second dial of the same attempt is refused by Asterisk), report
``answered`` at once (or why not), then say "this is the answer to your request <ref>", play
the reply and offer 1 = speak with an agent (an instant callback task), 2 = hear it again.
What the customer chose is audited.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from acdkit.ari.control import AriControl
from acdkit.ari.customer_call import ring_customer
from acdkit.ari.media import media
from acdkit.ari.session import ChannelGone, Session, Sessions
from acdkit.config import AgentSettings, CenterSettings, RequestSettings
from acdkit.core.callbacks import DialOutcome, reference
from acdkit.core.errors import AcdError, NumberRejected
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskKind
from acdkit.ports import Clock
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool
from acdkit.store.requests import RequestStore

log = logging.getLogger(__name__)
KEY_WAIT = 6.0


@dataclass(frozen=True)
class ReplyCalls:
    """What a reply's delivery call uses."""

    control: AriControl
    pool: Pool
    clock: Clock
    callbacks: CallbackStore  # the attempt, and the callback a customer may ask for
    numbers: NumberPolicy
    sessions: Sessions
    center: CenterSettings  # [center]: the trunk, the caller ID
    agents: AgentSettings  # [agents]: the ring timeout
    settings: RequestSettings  # [requests]


async def deliver_reply(ctx: ReplyCalls, command: dict[str, Any]) -> None:
    task_id, n = str(command["task_id"]), int(command["attempt"])
    attempt = await ctx.callbacks.get_attempt(task_id, n)
    if attempt is None or attempt.outcome is not None:
        log.info("reply %s attempt %s: no longer wanted", task_id, n)
        return
    customer_id = f"vr-{task_id}-{n}-c"
    customer = ctx.sessions.open(Session(customer_id, ctx.control,
                                         caller_number=attempt.number))
    try:
        outcome = await ring_customer(ctx.control, customer, attempt.number, ctx.center,
                                      ctx.agents.ring_timeout)
    except AcdError as exc:
        log.warning("reply %s attempt %s failed: %s", task_id, n, exc)
        outcome = DialOutcome.FAILED
    await ctx.callbacks.finish_attempt(task_id, n, outcome, ctx.clock.now())
    if outcome is not DialOutcome.ANSWERED:
        ctx.sessions.close(customer_id)
        return
    try:
        choice = await _play_reply(ctx, customer, task_id)
        await ctx.pool.audit.append(task_id, "reply_heard", choice=choice)
    except ChannelGone:
        await ctx.pool.audit.append(task_id, "reply_heard", choice="hung_up")
    finally:
        ctx.sessions.close(customer_id)
        if not customer.gone:
            await ctx.control.hangup(customer_id)


async def _play_reply(ctx: ReplyCalls, customer: Session, task_id: str) -> str:
    store = RequestStore(ctx.pool, ctx.settings)
    request = await store.get(task_id)
    if request is None:
        return "gone"
    for _ in range(3):
        customer.clear_digits()
        await customer.play(["sound:acdkit/vr-answer-is", f"digits:{request.ref}",
                             media(ctx.settings, request, "reply")])
        await customer.play(["sound:acdkit/vr-after-answer"], interruptible=True)
        key = customer.digits.pop(0) if customer.digits else await customer.read_key(KEY_WAIT)
        if key == "1":
            return await _agent_callback(ctx, customer, request.number, request.skill, task_id)
        if key != "2":
            await customer.play(["sound:acdkit/goodbye"])
            return "done"
    return "done"


async def _agent_callback(ctx: ReplyCalls, customer: Session, number: str, skill: str,
                          task_id: str) -> str:
    """Book an instant callback for the customer (the callback path dials agent first)."""
    now = ctx.clock.now()
    callback = Task(id=uuid.uuid4().hex[:16], kind=TaskKind.CALLBACK, skill=skill,
                    created_at=now, enqueued_at=now, number=number,
                    source=f"voice_request:{task_id}")
    try:
        result = await ctx.callbacks.book_callback(callback, policy=ctx.numbers,
                                                   caller_number=number, now=now)
    except NumberRejected as refused:
        log.info("reply %s: callback refused: %s", task_id, refused.reason)
        await customer.play(["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
        return f"callback_refused:{refused.reason}"
    booked: Task = result.task
    await customer.play(["sound:acdkit/cb-booked", f"digits:{reference(booked.id)}",
                         "sound:acdkit/goodbye"])
    return f"callback:{booked.id}"
