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
from typing import TYPE_CHECKING, Any

from acdkit.ari.dialback import _ring_customer
from acdkit.ari.media import media
from acdkit.ari.session import ChannelGone, Session
from acdkit.core.callbacks import DialOutcome, reference
from acdkit.core.errors import AcdError, NumberRejected
from acdkit.core.tasks import Task, TaskKind
from acdkit.store.requests import RequestStore

if TYPE_CHECKING:
    from acdkit.ari.app import StasisApp

log = logging.getLogger(__name__)
KEY_WAIT = 6.0


async def deliver_reply(app: StasisApp, command: dict[str, Any]) -> None:
    task_id, n = str(command["task_id"]), int(command["attempt"])
    attempt = await app.callbacks.get_attempt(task_id, n)
    if attempt is None or attempt.outcome is not None:
        log.info("reply %s attempt %s: no longer wanted", task_id, n)
        return
    customer_id = f"vr-{task_id}-{n}-c"
    customer = app.sessions.open(Session(customer_id, app.control,
                                         caller_number=attempt.number))
    try:
        outcome = await _ring_customer(app, customer, attempt.number)
    except AcdError as exc:
        log.warning("reply %s attempt %s failed: %s", task_id, n, exc)
        outcome = DialOutcome.FAILED
    await app.callbacks.finish_attempt(task_id, n, outcome, app.clock.now())
    if outcome is not DialOutcome.ANSWERED:
        app.sessions.close(customer_id)
        return
    try:
        choice = await _play_reply(app, customer, task_id)
        await app.pool.audit.append(task_id, "reply_heard", choice=choice)
    except ChannelGone:
        await app.pool.audit.append(task_id, "reply_heard", choice="hung_up")
    finally:
        app.sessions.close(customer_id)
        if not customer.gone:
            await app.control.hangup(customer_id)


async def _play_reply(app: StasisApp, customer: Session, task_id: str) -> str:
    store = RequestStore(app.pool, app.settings.requests)
    request = await store.get(task_id)
    if request is None:
        return "gone"
    for _ in range(3):
        customer.clear_digits()
        await customer.play(["sound:acdkit/vr-answer-is", f"digits:{request.ref}",
                             media(app.settings.requests, request, "reply")])
        await customer.play(["sound:acdkit/vr-after-answer"], interruptible=True)
        key = customer.digits.pop(0) if customer.digits else await customer.read_key(KEY_WAIT)
        if key == "1":
            return await _agent_callback(app, customer, request.number, request.skill, task_id)
        if key != "2":
            await customer.play(["sound:acdkit/goodbye"])
            return "done"
    return "done"


async def _agent_callback(app: StasisApp, customer: Session, number: str, skill: str,
                          task_id: str) -> str:
    """Book an instant callback for the customer (the callback path dials agent first)."""
    now = app.clock.now()
    callback = Task(id=uuid.uuid4().hex[:16], kind=TaskKind.CALLBACK, skill=skill,
                    created_at=now, enqueued_at=now, number=number,
                    source=f"voice_request:{task_id}")
    try:
        result = await app.callbacks.book_callback(callback, policy=app.number_policy,
                                                   caller_number=number, now=now)
    except NumberRejected as refused:
        log.info("reply %s: callback refused: %s", task_id, refused.reason)
        await customer.play(["sound:acdkit/vr-failed", "sound:acdkit/goodbye"])
        return f"callback_refused:{refused.reason}"
    booked: Task = result.task
    await customer.play(["sound:acdkit/cb-booked", f"digits:{reference(booked.id)}",
                         "sound:acdkit/goodbye"])
    return f"callback:{booked.id}"
