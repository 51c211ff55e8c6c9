"""Follow-ups in real Redis: one pending per number, the do-not-call list, drops, rules."""

from __future__ import annotations

from dataclasses import replace

import pytest
from poolkit import T0, ready_agent

from acdkit.core.errors import NumberRejected
from acdkit.core.numbers import NumberPolicy
from acdkit.core.rules import Rule
from acdkit.core.tasks import TaskEvent, TaskKind, TaskState
from acdkit.store.dnc import dnc_add, dnc_numbers, dnc_remove, on_dnc
from acdkit.store.outbound import (
    add_follow_up,
    drop_follow_ups,
    pending_follow_up,
    reevaluate,
    stored_rules,
)
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration

NUMBER = "+12015550123"


async def follow(pool: Pool, number: str = NUMBER, **kw: object):  # type: ignore[no-untyped-def]
    args = {"skill": "sales", "reason": "abandoned", "source": "missed-call", "now": T0, **kw}
    return await add_follow_up(pool, number=number, **args)  # type: ignore[arg-type]


async def test_one_pending_follow_up_per_number(pool: Pool) -> None:
    first = await follow(pool, attributes={"queue": "sales"})
    assert first is not None and first.kind is TaskKind.OUTBOUND
    assert (first.state, first.number, first.source) == (TaskState.QUEUED, NUMBER, "missed-call")
    assert dict(first.attributes) == {"queue": "sales", "reason": "abandoned"}
    assert await follow(pool, source="ami:abandon", skill="support") is None
    assert await follow(pool, "+12015550124") is not None
    queued = [t for t in await pool.list_tasks() if t.number == NUMBER]
    assert [t.id for t in queued] == [first.id]
    assert (await pool.audit.history(first.id))[-1].event == "follow_up"


async def test_a_number_gets_a_new_follow_up_once_the_last_one_ended(pool: Pool) -> None:
    first = await follow(pool)
    assert first is not None
    await pool.move_task(first.id, TaskEvent.FAIL, T0 + 1, outcome="no answer")
    second = await follow(pool, now=T0 + 2)
    assert second is not None and second.id != first.id
    assert (await pending_follow_up(pool, NUMBER)) == second


async def test_do_not_call_numbers_get_no_follow_up(pool: Pool) -> None:
    assert await dnc_add(pool, [NUMBER, NUMBER]) == 1
    assert await on_dnc(pool, NUMBER) and await dnc_numbers(pool) == [NUMBER]
    assert await follow(pool) is None
    policy = NumberPolicy(dnc=frozenset({"+12015550124"}))
    assert await follow(pool, "(201) 555-0124", policy=policy) is None
    assert await dnc_remove(pool, [NUMBER]) == 1
    assert await follow(pool) is not None
    with pytest.raises(NumberRejected) as err:
        await follow(pool, "anonymous")
    assert err.value.reason == "malformed"


async def test_drop_cancels_a_pending_follow_up_but_not_one_being_dialed(pool: Pool) -> None:
    first = await follow(pool)
    assert first is not None
    assert await drop_follow_ups(pool, NUMBER, T0 + 5, "called in") == 1
    cancelled = await pool.get_task(first.id)
    assert cancelled is not None and cancelled.state is TaskState.CANCELLED
    assert cancelled.outcome == "dropped: called in"
    assert await drop_follow_ups(pool, NUMBER, T0 + 6, "called in") == 0
    assert await drop_follow_ups(pool, "not-a-number", T0, "x") == 0
    second = await follow(pool, now=T0 + 7)
    assert second is not None
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", second.id, T0 + 8)
    assert await drop_follow_ups(pool, NUMBER, T0 + 9, "called back") == 0
    held = await pool.get_task(second.id)
    assert held is not None and held.state is TaskState.RESERVED
    assert await follow(pool, now=T0 + 10) is None  # being dialed is pending too


async def test_fixed_ids_make_a_retried_caller_add_it_once(pool: Pool) -> None:
    made = await follow(pool, task_id="cb1-fu")
    again = await follow(pool, task_id="cb1-fu")
    assert made is not None and again is not None and again.id == made.id == "cb1-fu"
    assert len(await pool.list_tasks()) == 1


async def test_rules_run_when_a_follow_up_is_added_and_again_on_retry(pool: Pool) -> None:
    pool.rules = replace(pool.rules, business=(
        Rule("missed-first", sources=("missed-call",), add_priority=30),
        Rule("retried", min_attempts=2, set_priority=5, require={"team": "b"}),
        Rule("no-spam", attributes={"reason": "spam"}, drop=True)))
    task = await follow(pool, priority=10)
    assert task is not None and task.priority == 40
    assert (await stored_rules(pool, task.id))["fired"] == "missed-first"
    assert await follow(pool, "+12015550124", reason="spam") is None
    assert await pool.get_task("x") is None and len(await pool.list_tasks()) == 1
    tried = await pool.update_task(task.id, T0 + 60, attempts=2)
    result = await reevaluate(pool, tried, T0 + 60)
    assert result.fired == ("missed-first", "retried")
    stored = await pool.get_task(task.id)
    assert stored is not None and (stored.priority, dict(stored.required)) == (5, {"team": "b"})
