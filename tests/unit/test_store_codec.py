"""The Redis codec and key names: pure functions, no Redis needed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acdkit.core.agents import Agent, AgentMode, AgentState
from acdkit.core.errors import InvalidInput
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.store.codec import (
    agent_from_hash,
    agent_to_hash,
    changed,
    task_from_hash,
    task_to_hash,
)
from acdkit.store.keys import Keys, check_id

ids = st.from_regex(r"\A[A-Za-z0-9._:-]{1,20}\Z")
text = st.text(max_size=20)
floats = st.floats(allow_nan=False, allow_infinity=False, width=64)
str_maps = st.dictionaries(ids, text, max_size=3)

tasks = st.builds(
    Task, id=ids, kind=st.sampled_from(TaskKind), skill=ids, created_at=floats,
    enqueued_at=floats, state=st.sampled_from(TaskState), priority=st.integers(-10**6, 10**6),
    number=text, name=text, source=text, due_at=st.none() | floats,
    preferred_agent=st.none() | ids, preferred_until=st.none() | floats,
    min_level=st.integers(1, 9), required=str_maps, attributes=str_maps,
    attempts=st.integers(0, 99), agent_id=st.none() | ids, channel_id=st.none() | ids,
    customer_rating=st.none() | floats, outcome=text)

agents = st.builds(
    Agent, id=ids, name=text, pin_hash=text,
    skills=st.dictionaries(ids, st.integers(1, 9), max_size=4), attributes=str_maps,
    reach=text, mode=st.sampled_from(AgentMode), state=st.sampled_from(AgentState),
    state_since=floats, task_id=st.none() | ids, misses=st.integers(0, 9), pause_reason=text)


@given(tasks)
def test_every_task_round_trips(task: Task) -> None:
    raw = task_to_hash(task)
    assert all(isinstance(v, str) for v in raw.values())
    assert task_from_hash(raw) == task


@given(agents)
def test_every_agent_round_trips(agent: Agent) -> None:
    assert agent_from_hash(agent_to_hash(agent)) == agent


def good_task() -> dict[str, str]:
    return task_to_hash(Task(id="t1", kind=TaskKind.CALL, skill="sales", created_at=1.0,
                             enqueued_at=1.0))


@pytest.mark.parametrize(("field", "value"), [
    ("kind", "telegram"), ("state", "lost"), ("priority", "high"), ("priority", "1.5"),
    ("created_at", "nan"), ("enqueued_at", ""), ("due_at", "soon"), ("required", "[1]"),
    ("required", "{bad json"), ("attributes", '{"vip": 1}'), ("customer_rating", "inf"),
])
def test_a_malformed_field_is_named(field: str, value: str) -> None:
    raw = {**good_task(), field: value}
    with pytest.raises(InvalidInput, match=f"task 't1': field '{field}' is malformed"):
        task_from_hash(raw)


def test_missing_and_unknown_fields_are_refused_but_the_score_is_the_stores() -> None:
    raw = good_task()
    del raw["skill"]
    with pytest.raises(InvalidInput, match="'skill' is missing"):
        task_from_hash(raw)
    with pytest.raises(InvalidInput, match="unknown field 'colour'"):
        task_from_hash({**good_task(), "colour": "red"})
    assert task_from_hash({**good_task(), "score": "12.5"}).id == "t1"


def test_a_task_stored_before_nodes_existed_reads_with_no_node() -> None:
    raw = good_task()
    del raw["node"]
    assert task_from_hash(raw) == task_from_hash(good_task())
    assert task_from_hash(raw).node == ""


def test_agent_skill_levels_must_be_integers() -> None:
    raw = agent_to_hash(Agent(id="a1"))
    for bad in ('{"sales": "5"}', '{"sales": true}', '{"sales": 2.5}'):
        with pytest.raises(InvalidInput, match="'skills'"):
            agent_from_hash({**raw, "skills": bad})


def test_changed_keeps_only_differences() -> None:
    assert changed({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": ""}) == {"b": "3", "c": ""}


def test_keys_share_one_hash_tag_and_refuse_unsafe_ids() -> None:
    keys = Keys()
    names = [keys.task("t1"), keys.agent("a1"), keys.queue("sales"), keys.ready("sales"),
             keys.due, keys.kpi, keys.audit_of("task", "t1"), keys.events]
    assert all(name.startswith("acdkit:{pool}:") for name in names)
    assert Keys("lab").task("x") == "lab:{pool}:task:x"
    for bad in ("", "a b", "a{b}", "x" * 129, "é", "a\nb", "ab\n"):
        with pytest.raises(InvalidInput):
            check_id(bad)
    with pytest.raises(InvalidInput):
        Keys("bad prefix")
    with pytest.raises(InvalidInput):
        keys.audit_of("callback", "t1")
