"""The Redis pool against a real redis-server: storage, indexes, claim, release, audit."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import cast

import pytest
from poolkit import RULES, T0, StepClock, ready_agent, task

from acdkit.core.agents import Agent, AgentEvent, AgentState
from acdkit.core.errors import (
    ClaimLost,
    InvalidInput,
    InvalidTransition,
    NoSuchAgent,
    NoSuchTask,
)
from acdkit.core.routing import PriorityRules, pool_score
from acdkit.core.tasks import Task, TaskEvent, TaskKind, TaskState
from acdkit.store.base import AgentMove, TaskMove
from acdkit.store.connection import ROUND_TRIPS
from acdkit.store.pool import Pool
from acdkit.store.scripts import ClaimResult

pytestmark = pytest.mark.integration


async def queue_ids(pool: Pool, skill: str = "sales") -> list[str]:
    return cast(list[str], await pool.redis.zrange(pool.keys.queue(skill), 0, -1))


async def ready_ids(pool: Pool, skill: str = "sales") -> set[str]:
    return cast(set[str], await pool.redis.smembers(pool.keys.ready(skill)))


# -- tasks -------------------------------------------------------------------------------------


async def test_a_queued_task_round_trips_and_waits_in_its_skill_queue(pool: Pool) -> None:
    added = task("t1", priority=3, number="+15551234567", required={"lang": "fr"},
                 attributes={"vip": "yes"}, customer_rating=4.5)
    await pool.add_task(added)
    assert await pool.get_task("t1") == added
    score = await pool.redis.zscore(pool.keys.queue("sales"), "t1")
    assert score == pool_score(added, RULES)
    assert [e.event for e in await pool.audit.history("t1")] == ["add"]


async def test_a_task_waiting_for_its_agent_is_held_out_of_the_skill_queue(pool: Pool) -> None:
    """Until its time is up, only its preferred agent's claims meet it; it still counts in
    the skill's line (places, waiting figures) and is served in score order."""
    await pool.add_task(task("early", at=T0 - 300))
    added = task("t1", at=T0 - 200, preferred_agent="a9", preferred_until=T0 + 30)
    await pool.add_task(added)
    await pool.add_task(task("late", at=T0 - 100))
    score = pool_score(added, RULES)
    assert await queue_ids(pool) == ["early", "late"]
    assert await pool.redis.zscore(pool.keys.queue_held("sales"), "t1") == score
    assert await pool.redis.zscore(pool.keys.held_for("a9"), "t1") == score
    assert await pool.redis.zscore(pool.keys.held_end, "t1") == T0 + 30
    assert [await pool.queue_position(t) for t in ("early", "t1", "late")] == [0, 1, 2]
    assert [s.waiting for s in await pool.stats(["sales"])] == [3]
    assert [t.id for _, t in await pool.candidates(["sales"], 2, offset=1)] == ["t1", "late"]

    await ready_agent(pool, "a1", now=T0 - 50)
    await ready_agent(pool, "a9", now=T0 - 40)
    made = await pool.claim_next(["a1", "a9"], T0)  # a1 passes t1 by without reading it
    assert {c.agent.id: c.task.id for c in made.claimed} == {"a1": "early", "a9": "t1"}
    assert made.wake_at == {}
    [reserve] = [e for e in await pool.audit.history("t1") if e.event == "reserve"]
    assert reserve.fields["pos"] == "1"
    for key in (pool.keys.queue_held("sales"), pool.keys.held_for("a9"), pool.keys.held_end):
        assert await pool.redis.zcard(key) == 0


async def test_a_held_task_joins_its_skill_queue_when_its_time_is_up(pool: Pool) -> None:
    await pool.add_task(task("t1", preferred_agent="a9", preferred_until=T0 + 30))
    await pool.add_task(task("t2", preferred_agent="a8", preferred_until=T0 + 90))
    await ready_agent(pool, "a1")
    made = await pool.claim_next(["a1"], T0 + 10)
    assert made.claimed == () and made.wake_at == {"t1": T0 + 30}  # the next time up
    made = await pool.claim_next(["a1"], T0 + 30)
    assert [c.task.id for c in made.claimed] == ["t1"]
    assert made.wake_at == {"t2": T0 + 90}
    assert await pool.redis.zrange(pool.keys.held_end, 0, -1) == ["t2"]
    assert await pool.redis.zrange(pool.keys.held_for("a9"), 0, -1) == []


async def recounted(pool: Pool) -> dict[tuple[str, str, str], int]:
    """The waiting counts counted again from the indexes (as for a pool written before)."""
    await pool.redis.hdel(pool.keys.counts, "built")
    return await pool.waiting_by_kind()


async def test_the_waiting_counts_follow_every_task_in_and_out_of_line(pool: Pool) -> None:
    """The scripts keep the counts as tasks join and leave the lines and the due set; they
    always equal a count made again from the indexes."""
    callback, request = TaskKind.CALLBACK, TaskKind.VOICE_REQUEST
    await pool.add_tasks([
        task("t1"), task("t2", preferred_agent="a9", preferred_until=T0 + 30),
        task("c1", kind=callback, state=TaskState.SCHEDULED, due_at=T0 + 60),
        task("c2", kind=callback), task("r1", "support", kind=request)])
    expected = {("sales", "call", "queued"): 2, ("sales", "callback", "scheduled"): 1,
                ("sales", "callback", "queued"): 1, ("support", "voice_request", "queued"): 1}
    assert await pool.waiting_by_kind() == expected == await recounted(pool)

    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)
    assert await pool.promote_due(T0 + 60) == ["c1"]
    await pool.move_task("r1", TaskEvent.ABANDON, T0 + 61)
    expected = {("sales", "call", "queued"): 1, ("sales", "callback", "queued"): 2}
    assert await pool.waiting_by_kind() == expected == await recounted(pool)

    await pool.release("t1", AgentState.READY, T0 + 62, reason="test")  # back in line
    assert (await pool.waiting_by_kind())[("sales", "call", "queued")] == 2
    made = await pool.claim_next(["a1"], T0 + 63)
    assert sum((await pool.waiting_by_kind()).values()) == 3 == sum(
        (await recounted(pool)).values()) and len(made.claimed) == 1


async def test_the_waiting_counts_are_counted_again_after_a_task_is_set_aside(
        pool: Pool) -> None:
    await pool.add_tasks([task("t1"), task("t2")])
    await pool.redis.hset(pool.keys.task("t2"), "min_level", "lots")  # unreadable now
    await pool.quarantine.add("task", "t2", "test", T0)
    assert await pool.waiting_by_kind() == {("sales", "call", "queued"): 1}
    await pool.redis.delete(pool.keys.counts)  # a pool written before the counts were kept
    assert await pool.waiting_by_kind() == {("sales", "call", "queued"): 1}


async def test_adding_an_existing_task_is_refused(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    with pytest.raises(InvalidInput, match="already exists"):
        await pool.add_task(task("t1", skill="support"))
    assert await queue_ids(pool, "support") == []


async def test_only_queued_or_scheduled_tasks_can_be_added(pool: Pool) -> None:
    with pytest.raises(InvalidInput, match="queued or scheduled"):
        await pool.add_task(task("t1", state=TaskState.ACTIVE))
    with pytest.raises(InvalidInput, match="due time"):
        await pool.add_task(task("t1", state=TaskState.SCHEDULED))


async def test_ids_that_cannot_be_key_names_are_refused(pool: Pool) -> None:
    with pytest.raises(InvalidInput, match="task id"):
        await pool.add_task(task("bad id"))
    with pytest.raises(InvalidInput, match="skill"):
        await pool.add_task(task("t1", skill="sales{x}"))
    with pytest.raises(InvalidInput, match="agent id"):
        await pool.get_agent("x" * 200)


async def test_add_tasks_pipelines_and_reports_duplicates(pool: Pool) -> None:
    await pool.add_task(task("t5", at=T0 + 5))
    skipped = await pool.add_tasks([task(f"t{i}", at=T0 + i) for i in range(10)], batch=4)
    assert skipped == ["t5"]
    assert await queue_ids(pool) == [f"t{i}" for i in range(10)]
    assert [t.id for t in await pool.list_tasks(limit=3)] == ["t9", "t8", "t7"]


async def test_a_corrupt_hash_is_refused_naming_the_field(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    await pool.redis.hset(pool.keys.task("t1"), "kind", "telegram")
    with pytest.raises(InvalidInput, match="'kind'"):
        await pool.get_task("t1")


async def test_candidates_read_the_heads_of_each_skill_queue(pool: Pool) -> None:
    await pool.add_tasks([task(f"s{i}", "sales", T0 + i) for i in range(5)]
                         + [task(f"p{i}", "support", T0 + i, priority=100) for i in range(3)])
    got = await pool.candidates(["sales", "support"], 2)
    assert [t.id for _, t in got] == ["s0", "s1", "p0", "p1"]
    deeper = await pool.candidates(["sales", "support"], 2, offset=2)
    assert [t.id for _, t in deeper] == ["s2", "s3", "p2"]
    assert all(score == pool_score(t, RULES) for score, t in got)


async def test_priority_points_come_before_waiting_time(pool: Pool) -> None:
    await pool.add_task(task("old", at=T0 - 60))
    await pool.add_task(task("urgent", at=T0, priority=5))  # 5 points = 5 minutes of waiting
    assert await queue_ids(pool) == ["urgent", "old"]
    assert await pool.queue_position("old") == 1
    assert await pool.queue_position("urgent") == 0
    assert await pool.queue_position("nothing") is None


async def test_update_task_rescores_and_refuses_state_fields(pool: Pool) -> None:
    await pool.add_task(task("a", at=T0))
    await pool.add_task(task("b", at=T0 + 1))
    await pool.update_task("b", T0 + 2, priority=10, name="Ann")
    assert await queue_ids(pool) == ["b", "a"]
    assert (await pool.get_task("b")).name == "Ann"  # type: ignore[union-attr]
    await pool.update_task("b", T0 + 3, skill="support")
    assert await queue_ids(pool) == ["a"]
    assert await queue_ids(pool, "support") == ["b"]
    with pytest.raises(InvalidInput, match="'state'"):
        await pool.update_task("a", T0, state=TaskState.COMPLETED)
    with pytest.raises(InvalidInput, match="colour"):
        await pool.update_task("a", T0, colour="blue")
    with pytest.raises(NoSuchTask):
        await pool.update_task("zz", T0, name="x")


async def test_move_task_applies_the_core_state_machine(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    cancelled = await pool.move_task("t1", TaskEvent.CANCEL, T0 + 1, outcome="customer asked")
    assert cancelled.state is TaskState.CANCELLED
    assert await queue_ids(pool) == []
    with pytest.raises(InvalidTransition):
        await pool.move_task("t1", TaskEvent.COMPLETE, T0 + 2)
    with pytest.raises(InvalidInput, match="claim"):
        await pool.move_task("t1", TaskEvent.RESERVE, T0 + 2)
    with pytest.raises(NoSuchTask):
        await pool.move_task("zz", TaskEvent.CANCEL, T0)
    story = await pool.audit.history("t1")
    assert [(e.event, e.fields.get("to")) for e in story] == [
        ("add", "queued"), ("cancel", "cancelled")]
    assert story[-1].fields["outcome"] == "customer asked"


async def test_move_task_with_the_wrong_holder_loses(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)
    with pytest.raises(ClaimLost):
        await pool.move_task("t1", TaskEvent.COMPLETE, T0 + 1, expect_agent="a2")
    done = await pool.move_task("t1", TaskEvent.COMPLETE, T0 + 1, expect_agent="a1")
    assert done.state is TaskState.COMPLETED and done.agent_id == "a1"


async def test_concurrent_moves_of_one_task_end_in_one_winner(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    events = [TaskEvent.CANCEL, TaskEvent.EXPIRE, TaskEvent.ABANDON, TaskEvent.FAIL] * 5
    results = await asyncio.gather(*(pool.move_task("t1", e, T0) for e in events),
                                   return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, InvalidTransition | ClaimLost) for r in results if r not in winners)
    assert (await pool.get_task("t1")).state is winners[0].state  # type: ignore[union-attr]


async def t1_reserved_for_a1(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)


async def test_a_move_from_a_task_just_read_is_one_round_trip(pool: Pool) -> None:
    await t1_reserved_for_a1(pool)
    current = await pool.get_task("t1")
    assert current is not None
    before = ROUND_TRIPS.count
    active = await pool.move_task("t1", TaskEvent.CONNECT, T0 + 1, known=current)
    assert ROUND_TRIPS.count - before == 1
    assert active == await pool.get_task("t1")
    assert (active.state, active.agent_id) == (TaskState.ACTIVE, "a1")
    assert [e.event for e in await pool.audit.history("t1")][-1] == "connect"


async def test_an_out_of_date_copy_of_a_task_is_read_again(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    queued = await pool.get_task("t1")
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)
    # queued → active is no move of the core: the copy is set aside, not believed
    active = await pool.move_task("t1", TaskEvent.CONNECT, T0 + 1, known=queued)
    assert (active.state, active.agent_id) == (TaskState.ACTIVE, "a1")
    # a copy whose state the script refuses (reserved, stored active): read again
    reserved = replace(active, state=TaskState.RESERVED)
    before = ROUND_TRIPS.count
    done = await pool.move_task("t1", TaskEvent.COMPLETE, T0 + 2, known=reserved)
    assert ROUND_TRIPS.count - before == 3  # the refused script, the read, the script
    assert done.state is TaskState.COMPLETED == (await pool.get_task("t1")).state  # type: ignore[union-attr]
    with pytest.raises(InvalidTransition):  # what a fresh read says still stands
        await pool.move_task("t1", TaskEvent.CONNECT, T0 + 3, known=reserved)


async def test_a_move_from_a_known_agent_leaves_fields_changed_meanwhile(pool: Pool) -> None:
    await t1_reserved_for_a1(pool)
    claimed = await pool.get_agent("a1")
    assert claimed is not None
    await pool.save_agent(replace(claimed, name="Ann B."), T0 + 1)  # a profile edit meanwhile
    before = ROUND_TRIPS.count
    on_call = await pool.move_agent("a1", AgentEvent.ANSWER, T0 + 2, known=claimed)
    assert ROUND_TRIPS.count - before == 1
    stored = await pool.get_agent("a1")
    assert stored is not None
    assert (stored.state, stored.task_id, stored.name) == (AgentState.ON_CALL, "t1", "Ann B.")
    assert on_call.state is AgentState.ON_CALL
    # an out-of-date copy (still reserved) is read again: on call → wrap-up by END
    ended = await pool.move_agent("a1", AgentEvent.END, T0 + 3, known=claimed,
                                  expect_task="t1")
    assert ended.state is AgentState.WRAP_UP
    with pytest.raises(ClaimLost):  # a copy holding t1; the stored agent holds nothing
        await pool.move_agent("a1", AgentEvent.ANSWER, T0 + 4, known=claimed,
                              expect_task="t1")


async def test_a_calls_two_moves_from_its_copies_take_one_round_trip(pool: Pool) -> None:
    """The agent answers and the task connects; then the task ends and the agent goes to
    wrap-up: each pair one round trip, with what two single moves would store."""
    await t1_reserved_for_a1(pool)
    task, agent = await pool.get_task("t1"), await pool.get_agent("a1")
    before = ROUND_TRIPS.count
    on_call, active = await pool.move_together(
        [AgentMove("a1", AgentEvent.ANSWER, known=agent),
         TaskMove("t1", TaskEvent.CONNECT, known=task)], T0 + 1)
    assert ROUND_TRIPS.count - before == 1
    assert on_call == await pool.get_agent("a1")
    assert active == await pool.get_task("t1")
    assert isinstance(on_call, Agent) and on_call.state is AgentState.ON_CALL
    assert isinstance(active, Task) and active.state is TaskState.ACTIVE
    before = ROUND_TRIPS.count
    done, wrapping = await pool.move_together(
        [TaskMove("t1", TaskEvent.COMPLETE, known=active, outcome="customer hung up"),
         AgentMove("a1", AgentEvent.END, known=on_call)], T0 + 9)
    assert ROUND_TRIPS.count - before == 1
    assert done == await pool.get_task("t1")
    assert isinstance(done, Task) and (done.state, done.outcome) == (TaskState.COMPLETED,
                                                                      "customer hung up")
    assert isinstance(wrapping, Agent) and wrapping == await pool.get_agent("a1")
    assert (wrapping.state, wrapping.task_id) == (AgentState.WRAP_UP, None)
    assert [e.event for e in await pool.audit.history("t1")][-2:] == ["connect", "complete"]


async def test_a_move_whose_copy_is_out_of_date_is_made_again_from_a_fresh_read(
        pool: Pool) -> None:
    """The task's copy says reserved, the store says active (another writer connected it):
    its compare-and-set refuses it in the round trip, the move is made again from a read,
    and the agent's move, whose copy was right, is made once."""
    await t1_reserved_for_a1(pool)
    reserved, agent = await pool.get_task("t1"), await pool.get_agent("a1")
    assert reserved is not None and agent is not None
    await pool.move_task("t1", TaskEvent.CONNECT, T0 + 1)
    on_call = await pool.move_agent("a1", AgentEvent.ANSWER, T0 + 1, known=agent)
    before = ROUND_TRIPS.count
    done, ended = await pool.move_together(
        [TaskMove("t1", TaskEvent.COMPLETE, known=reserved),
         AgentMove("a1", AgentEvent.END, known=on_call)], T0 + 5)
    assert ROUND_TRIPS.count - before == 3  # the pair, the task's read, its script
    assert isinstance(done, Task) and done.state is TaskState.COMPLETED
    assert done == await pool.get_task("t1")
    assert isinstance(ended, Agent) and ended.state is AgentState.WRAP_UP
    assert [e.event for e in await pool.audit.history("a1", "agent")].count("end") == 1


async def test_without_every_copy_each_move_still_starts_from_its_own(pool: Pool) -> None:
    """The agent hung up first: its call holds the agent as connected but not the task. The
    task is read and written; the agent is written from its copy, with no read."""
    await t1_reserved_for_a1(pool)
    agent = await pool.get_agent("a1")
    await pool.move_task("t1", TaskEvent.CONNECT, T0 + 1)
    on_call = await pool.move_agent("a1", AgentEvent.ANSWER, T0 + 1, known=agent)
    before = ROUND_TRIPS.count
    done, ended = await pool.move_together(
        [TaskMove("t1", TaskEvent.COMPLETE, outcome="agent hung up"),
         AgentMove("a1", AgentEvent.END, known=on_call)], T0 + 5)
    assert ROUND_TRIPS.count - before == 3  # the task's read and script, the agent's script
    assert isinstance(done, Task) and done == await pool.get_task("t1")
    assert done.state is TaskState.COMPLETED
    assert isinstance(ended, Agent) and ended == await pool.get_agent("a1")
    assert ended.state is AgentState.WRAP_UP


async def test_a_move_the_store_refuses_is_returned_and_the_other_is_made(pool: Pool) -> None:
    """A task the caller already ended cannot end again: its refusal comes back as a value
    and its agent still goes to wrap-up; a copy of another record is not used; a claim is
    not a move."""
    await t1_reserved_for_a1(pool)
    agent = await pool.get_agent("a1")
    await pool.move_task("t1", TaskEvent.ABANDON, T0 + 1)
    other = await pool.get_task("t1")
    assert other is not None
    refused, ended = await pool.move_together(
        [TaskMove("t1", TaskEvent.COMPLETE, known=replace(other, id="t2")),
         AgentMove("a1", AgentEvent.END, known=agent)], T0 + 2)
    assert isinstance(refused, InvalidTransition)
    assert (await pool.get_task("t1")).state is TaskState.ABANDONED  # type: ignore[union-attr]
    assert isinstance(ended, Agent) and ended.state is AgentState.WRAP_UP
    missing, = await pool.move_together([TaskMove("t9", TaskEvent.COMPLETE)], T0 + 3)
    assert isinstance(missing, NoSuchTask)
    with pytest.raises(InvalidInput):
        await pool.move_together([AgentMove("a1", AgentEvent.RESERVE, known=ended)], T0 + 4)


async def test_a_pair_of_moves_loads_the_scripts_redis_lost(pool: Pool) -> None:
    """After SCRIPT FLUSH (a restart, a failover) the round trip's scripts did not run: each
    move is made alone, which loads its script, and once only."""
    await t1_reserved_for_a1(pool)
    task, agent = await pool.get_task("t1"), await pool.get_agent("a1")
    await pool.redis.script_flush()
    on_call, active = await pool.move_together(
        [AgentMove("a1", AgentEvent.ANSWER, known=agent),
         TaskMove("t1", TaskEvent.CONNECT, known=task)], T0 + 1)
    assert isinstance(on_call, Agent) and on_call.state is AgentState.ON_CALL
    assert isinstance(active, Task) and active.state is TaskState.ACTIVE
    assert [e.event for e in await pool.audit.history("t1")].count("connect") == 1
    assert [e.event for e in await pool.audit.history("a1", "agent")].count("answer") == 1


# -- scheduled tasks ---------------------------------------------------------------------------


async def test_scheduled_tasks_join_the_pool_when_due(pool: Pool) -> None:
    await pool.add_task(task("cb", kind=TaskKind.CALLBACK, at=T0 - 600,
                             state=TaskState.SCHEDULED, due_at=T0 + 60))
    assert await queue_ids(pool) == []
    assert await pool.next_due() == T0 + 60
    assert await pool.promote_due(T0 + 59) == []
    assert await pool.promote_due(T0 + 61) == ["cb"]
    promoted = await pool.get_task("cb")
    assert promoted is not None and promoted.state is TaskState.QUEUED
    assert promoted.enqueued_at == T0 - 600  # it kept its older place in line
    assert await queue_ids(pool) == ["cb"]
    assert await pool.next_due() is None
    assert await pool.promote_due(T0 + 62) == []


async def test_a_scheduled_task_without_an_older_place_waits_from_its_due_time(
        pool: Pool) -> None:
    await pool.add_task(task("cb", at=T0 + 600, state=TaskState.SCHEDULED, due_at=T0 + 60))
    await pool.promote_due(T0 + 100)
    promoted = await pool.get_task("cb")
    assert promoted is not None and promoted.enqueued_at == T0 + 100
    assert await pool.redis.zscore(pool.keys.queue("sales"), "cb") == \
        pool_score(promoted, RULES)


async def test_reschedule_moves_a_task_to_the_due_set(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    await pool.move_task("t1", TaskEvent.RESCHEDULE, T0, due_at=T0 + 300)
    assert await queue_ids(pool) == []
    assert await pool.redis.zscore(pool.keys.due, "t1") == T0 + 300


# -- agents ------------------------------------------------------------------------------------


async def test_save_agent_creates_logged_out_and_keeps_state_on_update(pool: Pool) -> None:
    saved = await pool.save_agent(Agent(id="a1", name="Ann", skills={"sales": 3},
                                        state=AgentState.READY), T0)
    assert saved.state is AgentState.LOGGED_OUT
    await pool.move_agent("a1", AgentEvent.LOGIN, T0, reach="PJSIP/a1")
    updated = await pool.save_agent(replace(saved, name="Anne", state=AgentState.PAUSED), T0)
    assert updated.name == "Anne" and updated.state is AgentState.READY
    assert [a.id for a in await pool.list_agents()] == ["a1"]
    assert await pool.get_agent("nobody") is None
    with pytest.raises(InvalidInput, match="reach"):
        await pool.save_agent(Agent(id="a2", reach="SIP/evil&Local/1"), T0)


async def test_ready_sets_follow_state_and_skill_changes(pool: Pool) -> None:
    agent = await ready_agent(pool, "a1", {"sales": 5, "support": 2})
    assert await ready_ids(pool, "sales") == {"a1"} == await ready_ids(pool, "support")
    await pool.save_agent(replace(agent, skills={"support": 2, "billing": 1}), T0)
    assert await ready_ids(pool, "sales") == set()
    assert await ready_ids(pool, "billing") == {"a1"}
    await pool.move_agent("a1", AgentEvent.PAUSE, T0 + 1, reason="lunch")
    assert await ready_ids(pool, "support") == set() == await ready_ids(pool, "billing")
    await pool.move_agent("a1", AgentEvent.RESUME, T0 + 2)
    assert [a.id for a in await pool.ready_agents("billing")] == ["a1"]


async def test_move_agent_refuses_what_the_core_refuses(pool: Pool) -> None:
    await pool.save_agent(Agent(id="a1", skills={"sales": 1}), T0)
    with pytest.raises(InvalidTransition):
        await pool.move_agent("a1", AgentEvent.PAUSE, T0)
    with pytest.raises(InvalidInput, match="claim"):
        await pool.move_agent("a1", AgentEvent.RESERVE, T0)
    with pytest.raises(NoSuchAgent):
        await pool.move_agent("a9", AgentEvent.LOGIN, T0, reach="PJSIP/a9")
    with pytest.raises(ClaimLost):
        await pool.move_agent("a1", AgentEvent.LOGIN, T0, reach="PJSIP/a1", expect_task="t1")


# -- claim and release -------------------------------------------------------------------------


async def test_claim_reserves_both_sides_atomically_and_audits(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    await ready_agent(pool, "a1", {"sales": 5, "support": 5})
    assert await pool.try_claim("a1", "t1", T0 + 5) is ClaimResult.OK
    agent, held = await pool.get_agent("a1"), await pool.get_task("t1")
    assert agent is not None and held is not None
    assert (agent.state, agent.task_id, agent.state_since) == (AgentState.RESERVED, "t1", T0 + 5)
    assert (held.state, held.agent_id) == (TaskState.RESERVED, "a1")
    assert await queue_ids(pool) == []
    assert await ready_ids(pool, "sales") == set() == await ready_ids(pool, "support")
    assert [e.event for e in await pool.audit.history("t1")] == ["add", "reserve"]
    assert [e.event for e in await pool.audit.history("a1", "agent")][-1] == "reserve"


async def test_claim_says_why_it_failed(pool: Pool) -> None:
    await pool.add_tasks([task("t1"), task("t2"), task("hard", min_level=9)])
    await ready_agent(pool, "a1")
    await ready_agent(pool, "a2")
    assert await pool.try_claim("a1", "hard", T0) is ClaimResult.INELIGIBLE
    assert await pool.try_claim("a1", "t1", T0) is ClaimResult.OK
    assert await pool.try_claim("a2", "t1", T0) is ClaimResult.TASK_TAKEN
    assert await pool.try_claim("a1", "t2", T0) is ClaimResult.AGENT_BUSY
    assert await pool.try_claim("a2", "nope", T0) is ClaimResult.MISSING
    assert not await pool.claim("ghost", "t2", T0)


async def test_release_puts_the_task_back_in_its_original_place(pool: Pool,
                                                                clock: StepClock) -> None:
    await pool.add_tasks([task(f"t{i}", at=T0 + i) for i in range(5)])
    await ready_agent(pool, "a1")
    original = await pool.redis.zscore(pool.keys.queue("sales"), "t0")
    assert await pool.claim("a1", "t0", T0 + 10)
    await pool.add_task(task("late", at=T0 + 11))
    # Another process with other rules releases it: the stored score wins.
    other = Pool(pool.redis, PriorityRules(aging_per_minute=10), clock=clock)
    await other.release("t0", AgentState.WRAP_UP, T0 + 40, reason="no answer", missed=True)
    assert await pool.redis.zscore(pool.keys.queue("sales"), "t0") == original
    assert await pool.queue_position("t0") == 0
    assert await queue_ids(pool) == ["t0", "t1", "t2", "t3", "t4", "late"]
    agent = await pool.get_agent("a1")
    assert agent is not None
    assert (agent.state, agent.task_id, agent.misses) == (AgentState.WRAP_UP, None, 1)
    with pytest.raises(InvalidTransition):
        await pool.release("t0", AgentState.READY, T0 + 41)


async def test_release_to_ready_wakes_the_agent_and_pause_keeps_a_reason(pool: Pool) -> None:
    await pool.add_tasks([task("t1"), task("t2")])
    await ready_agent(pool, "a1")
    await ready_agent(pool, "a2")
    assert await pool.claim("a1", "t1", T0)
    assert await pool.claim("a2", "t2", T0)
    await pool.release("t1", AgentState.READY, T0 + 1)
    await pool.release("t2", AgentState.PAUSED, T0 + 1, reason="connect_failed")
    assert await ready_ids(pool) == {"a1"}
    paused = await pool.get_agent("a2")
    assert paused is not None and paused.pause_reason == "connect_failed"
    with pytest.raises(InvalidInput):
        await pool.release("t1", AgentState.ON_CALL, T0)


async def test_release_does_not_touch_an_agent_that_moved_on(pool: Pool) -> None:
    await pool.add_tasks([task("t1"), task("t2", at=T0 + 1)])
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)
    await pool.move_agent("a1", AgentEvent.ANSWER, T0 + 1)
    await pool.move_task("t1", TaskEvent.CONNECT, T0 + 1)
    await pool.move_agent("a1", AgentEvent.END, T0 + 1)  # t1 stays active: not finished
    await pool.move_agent("a1", AgentEvent.WRAPPED, T0 + 2)
    assert await pool.claim("a1", "t2", T0 + 3)
    await pool.release("t1", AgentState.READY, T0 + 4)
    assert await pool.queue_position("t1") == 0
    agent = await pool.get_agent("a1")
    assert agent is not None and (agent.state, agent.task_id) == (AgentState.RESERVED, "t2")


async def test_no_answer_or_logout_of_a_reserved_agent_requeues_its_task(pool: Pool) -> None:
    await pool.add_tasks([task("t1"), task("t2", at=T0 + 1)])
    await ready_agent(pool, "a1")
    await ready_agent(pool, "a2")
    assert await pool.claim("a1", "t1", T0)
    assert await pool.claim("a2", "t2", T0)
    missed = await pool.move_agent("a1", AgentEvent.NO_ANSWER, T0 + 20, expect_task="t1")
    assert (missed.state, missed.misses) == (AgentState.WRAP_UP, 1)
    await pool.move_agent("a2", AgentEvent.LOGOUT, T0 + 20)
    assert await queue_ids(pool) == ["t1", "t2"]
    assert [e.event for e in await pool.audit.history("t1")] == ["add", "reserve", "release"]


async def test_ending_a_reservation_before_the_task_moved_requeues_it(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)
    await pool.move_agent("a1", AgentEvent.END, T0 + 1)
    assert await queue_ids(pool) == ["t1"]
    back = await pool.get_task("t1")
    assert back is not None and (back.state, back.agent_id) == (TaskState.QUEUED, None)


async def test_rescheduling_a_held_task_frees_its_agent(pool: Pool) -> None:
    await pool.add_task(task("cb", kind=TaskKind.CALLBACK))
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "cb", T0)
    await pool.move_agent("a1", AgentEvent.ANSWER, T0 + 1)
    await pool.move_task("cb", TaskEvent.CONNECT, T0 + 1)
    # The customer did not answer: retry later; the agent is free in the same step.
    await pool.move_task("cb", TaskEvent.RESCHEDULE, T0 + 30, due_at=T0 + 600,
                         expect_agent="a1")
    agent = await pool.get_agent("a1")
    assert agent is not None and (agent.state, agent.task_id) == (AgentState.WRAP_UP, None)
    story = await pool.audit.history("a1", "agent")
    assert (story[-1].event, story[-1].fields["reason"]) == ("end", "reschedule")


async def test_an_answered_task_stays_when_its_agent_logs_out(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    await ready_agent(pool, "a1")
    assert await pool.claim("a1", "t1", T0)
    await pool.move_agent("a1", AgentEvent.ANSWER, T0 + 1)
    await pool.move_task("t1", TaskEvent.CONNECT, T0 + 1)
    await pool.move_agent("a1", AgentEvent.LOGOUT, T0 + 2)
    assert (await pool.get_task("t1")).state is TaskState.ACTIVE  # type: ignore[union-attr]


# -- stats, events, audit ----------------------------------------------------------------------


async def test_stats_per_skill(pool: Pool) -> None:
    await pool.add_tasks([task("t1", at=T0 + 5), task("t2", at=T0, priority=-50),
                          task("s1", "support", T0 + 9)])
    await ready_agent(pool, "a1", {"support": 1})
    stats = {s.skill: s for s in await pool.stats()}
    assert (stats["sales"].waiting, stats["sales"].oldest_enqueued_at) == (2, T0)
    assert (stats["support"].waiting, stats["support"].ready_agents) == (1, 1)
    assert [s.waiting for s in await pool.stats(["billing"])] == [0]


async def test_changes_publish_wake_ups(pool: Pool) -> None:
    pubsub = pool.redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(pool.keys.events)
    try:
        await pool.add_task(task("t1"))
        await pool.add_task(task("later", state=TaskState.SCHEDULED, due_at=T0 + 9))
        await ready_agent(pool, "a1")
        got = []
        for _ in range(20):
            message = await pubsub.get_message(timeout=0.2)
            if message:
                got.append(message["data"])
            if len(got) == 2:
                break
        assert got == ["task_added t1", "agent_ready a1"]
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_audit_append_history_and_tail(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    await pool.audit.append("t1", "dial", now=T0 + 1, attempt="1", channel="acdkit-t1-1")
    await pool.audit.append("a1", "note", kind="agent", text="hello")
    story = await pool.audit.history("t1")
    assert [e.event for e in story] == ["add", "dial"]
    assert story[1].fields == {"attempt": "1", "channel": "acdkit-t1-1"}
    assert story[1].ts == T0 + 1
    tail = await pool.audit.tail(2)
    assert [(e.kind, e.event) for e in tail] == [("task", "dial"), ("agent", "note")]
    assert tail[1].ts == T0  # the pool's clock
    assert [e.event for e in await pool.audit.since(tail[0].id)] == ["note"]


async def test_audit_entries_are_one_json_field_and_older_ones_still_read(pool: Pool) -> None:
    await pool.add_task(task("t1"))
    # an entry as written before entries were packed: one stream field per entry field
    await pool.redis.xadd(pool.keys.audit_of("task", "t1"),
                          {"ts": "5.5", "event": "dial", "kind": "task", "entity": "t1",
                           "attempt": "1"})
    await pool.audit.append("t1", "note", now=T0 + 2, text="a/b \"quoted\"")
    raw = await pool.redis.xrange(pool.keys.audit_of("task", "t1"))
    assert [sorted(fields) for _, fields in raw] == [["e"], sorted(
        ["ts", "event", "kind", "entity", "attempt"]), ["e"]]
    story = await pool.audit.history("t1")
    assert [(e.event, e.ts) for e in story] == [("add", T0), ("dial", 5.5), ("note", T0 + 2)]
    assert story[0].fields["skill"] == "sales" and story[0].fields["pos"] == "1"
    assert story[1].fields == {"attempt": "1"}
    assert story[2].fields == {"text": 'a/b "quoted"'}
    # the script's entry and the appended one are the same text in the pool's stream
    trail = await pool.redis.xrange(pool.keys.kpi)
    assert [fields["e"] for _, fields in trail] == [raw[0][1]["e"], raw[2][1]["e"]]


async def test_audit_streams_stay_bounded(redis_url: str, clock: StepClock) -> None:
    from acdkit.store.connection import connect

    small = Pool(await connect(redis_url), RULES, clock=clock, audit_maxlen=10,
                 entity_audit_maxlen=10)
    try:
        await small.add_task(task("t1"))
        for i in range(500):
            await small.update_task("t1", T0 + i, name=f"n{i}")
        assert await small.redis.xlen(small.keys.kpi) < 200
        assert await small.redis.xlen(small.keys.audit_of("task", "t1")) < 200
    finally:
        await small.close()
