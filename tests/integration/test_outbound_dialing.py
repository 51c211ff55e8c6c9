"""Outbound tasks through the generalised dial_back job (real Redis, RQ, a fake serve):
agent first like callbacks, retries by source, rules again before each retry, and the
do-not-call list checked before any dial."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_dial_back_job import A, env, get, history, on_store, reserve, serve, work

from acdkit.core.tasks import TaskKind, TaskState
from acdkit.store.callbacks import CallbackStore
from acdkit.store.dnc import dnc_add
from acdkit.store.outbound import add_follow_up, stored_rules
from acdkit.testing import FakeCallRunner

pytestmark = pytest.mark.integration
__all__ = ["env", "serve"]  # fixtures of test_dial_back_job, used here

NUMBER = "+12015550123"
CONFIG = """
[outbound]
max_attempts = 3
intervals = [600]
[outbound.sources."csv:*"]
intervals = [120]
max_attempts = 2

[[rules]]
name = "second-try-first"
min_attempts = 1
add_priority = 25

[[rules]]
name = "vip"
attributes = { segment = "vip" }
add_priority = 10
"""


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    path = tmp_path / "acdkit.toml"
    path.write_text(CONFIG, encoding="utf-8")
    monkeypatch.setenv("ACDKIT_CONFIG", str(path))


def lead(task_id: str, source: str = "csv:leads.csv") -> str:
    async def go(store: CallbackStore) -> str:
        made = await add_follow_up(store.pool, number=NUMBER, skill="sales", reason="lead",
                                   source=source, now=time.time(), task_id=task_id,
                                   attributes={"segment": "vip"})
        assert made is not None and made.priority == 10
        return made.id

    return on_store(go)


def test_an_outbound_task_is_dialed_agent_first_and_retried_by_its_source(
        config: None, serve: Callable[..., FakeCallRunner]) -> None:
    fake = serve(A.NO_ANSWER, A.ANSWERED)
    lead("ob1")
    before = time.time()
    reserve("ob1")
    work()
    task = get("ob1")
    assert (task.kind, task.state, task.attempts) == (TaskKind.OUTBOUND, TaskState.SCHEDULED, 1)
    assert task.due_at is not None and before + 120 <= task.due_at <= time.time() + 120
    assert task.priority == 35  # the rules ran again: attempts 1 fires the second rule
    assert on_store(lambda s: stored_rules(s.pool, "ob1"))["fired"] == "second-try-first,vip"
    assert [c["number"] for c in fake.commands] == [NUMBER]
    assert fake.commands[0]["agent_id"] == "a1"


def test_the_last_attempt_of_a_source_fails_the_task_and_frees_the_number(
        config: None, serve: Callable[..., FakeCallRunner]) -> None:
    serve(A.BUSY, A.BUSY)
    lead("ob1")
    reserve("ob1")
    work()
    on_store(lambda s: s.pool.promote_due(time.time() + 200))
    reserve("ob1")
    work()
    task = get("ob1")
    assert (task.state, task.outcome) == (TaskState.FAILED, "busy after 2 attempts")
    again = on_store(lambda s: add_follow_up(s.pool, number=NUMBER, skill="sales",
                                             reason="again", source="agent", now=time.time()))
    assert again is not None  # the number's follow-up pointer was freed


def test_a_number_put_on_the_do_not_call_list_is_never_dialed(
        config: None, serve: Callable[..., FakeCallRunner]) -> None:
    fake = serve(A.ANSWERED)
    lead("ob1")
    on_store(lambda s: dnc_add(s.pool, [NUMBER]))
    reserve("ob1")
    work()
    task = get("ob1")
    assert (task.state, task.outcome) == (TaskState.FAILED, "refused: do_not_call")
    assert fake.commands == [] and "attempt_requested" not in history("ob1")
    agent = on_store(lambda s: s.pool.get_agent("a1"))
    assert agent is not None and agent.task_id is None
