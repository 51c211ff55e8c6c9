"""The dial_back job against real Redis, real RQ (SimpleWorker) and a fake serve.

The tests are synchronous: RQ's worker installs signal handlers (main thread only) and the job
runs ``asyncio.run`` itself; the fake serve (``acdkit.testing.FakeCallRunner``) runs in a
thread of its own. Times are real; the retry intervals make the due times easy to check.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis
from click.testing import CliRunner
from poolkit import ready_agent
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from acdkit.cli import main
from acdkit.config import Settings, load_settings
from acdkit.core.agents import AgentEvent, AgentState
from acdkit.core.callbacks import DialOutcome
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import Task, TaskKind, TaskState
from acdkit.jobqueue import RqJobQueue
from acdkit.jobs.callbacks import with_store
from acdkit.services.callbacks import enqueue_dial_back
from acdkit.services.dial_back import dial_back_of
from acdkit.services.maintenance import promote_due_callbacks, recover_callbacks
from acdkit.store.callbacks import CallbackStore
from acdkit.testing import FakeCallRunner, finish_later

pytestmark = pytest.mark.integration
T = TypeVar("T")

NUMBER = "+12015550123"
ENV = {"ACDKIT_CALLBACKS_INTERVALS": "60,300", "ACDKIT_CALLBACKS_MAX_ATTEMPTS": "3",
       "ACDKIT_CALLBACKS_EXPIRE_AFTER": "86400", "ACDKIT_CALLBACKS_LOCK_TTL": "1",
       "ACDKIT_NUMBERS_CALLING_HOURS": "mon-sun 00:00-24:00"}
A = DialOutcome


@pytest.fixture
def env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The job's settings, as a worker finds them: ACDKIT_* variables."""
    values = {**ENV, "ACDKIT_REDIS_URL": redis_url}
    monkeypatch.delenv("ACDKIT_CONFIG", raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def settings() -> Settings:
    return load_settings()


def on_store(work: Callable[[CallbackStore], Awaitable[T]]) -> T:
    return asyncio.run(with_store(settings(), work))


def enqueue(task_id: str) -> str:
    jobs = RqJobQueue(settings().redis.url)
    try:
        return on_store(lambda s: enqueue_dial_back(s, jobs, task_id))
    finally:
        jobs.close()


def work() -> None:
    """Run every queued job in this process (RQ's SimpleWorker, burst mode)."""
    connection = redis.Redis.from_url(settings().redis.url)
    queue = Queue("callbacks", connection=connection, serializer=JSONSerializer)
    SimpleWorker([queue], connection=connection, serializer=JSONSerializer).work(burst=True)
    connection.close()


def book(task_id: str, *, created: float | None = None, place: float | None = None) -> Task:
    now = time.time()
    task = Task(id=task_id, kind=TaskKind.CALLBACK, skill="sales", number=NUMBER,
                created_at=created or now, enqueued_at=place or now)
    return on_store(lambda s: s.book_callback(task, policy=NumberPolicy(),
                                              caller_number="+12015550199", now=now)).task


def reserve(task_id: str, agent_id: str = "a1") -> None:
    """The dispatcher's part: an agent ready (again) and reserved for the task, the job
    enqueued."""
    async def go(store: CallbackStore) -> None:
        pool, now = store.pool, time.time()
        agent = await pool.get_agent(agent_id)
        if agent is None:
            await ready_agent(pool, agent_id, now=now)
        elif agent.state is AgentState.WRAP_UP:
            await pool.move_agent(agent_id, AgentEvent.WRAPPED, now)
        assert await pool.claim(agent_id, task_id, now)

    on_store(go)
    enqueue(task_id)


def get(task_id: str) -> Task:
    task = on_store(lambda s: s.pool.get_task(task_id))
    assert task is not None
    return task


def promote(at: float) -> list[str]:
    return on_store(lambda s: promote_due_callbacks(s, dial_back_of(s, settings()).retry, at))


def attempts(task_id: str) -> list[Any]:
    return on_store(lambda s: s.attempts(task_id))


def history(task_id: str) -> list[str]:
    return [e.event for e in on_store(lambda s: s.pool.audit.history(task_id))]


@pytest.fixture
def serve(env: dict[str, str]) -> Iterator[Callable[..., FakeCallRunner]]:
    made: list[FakeCallRunner] = []

    def start(*outcomes: DialOutcome | None, **kw: Any) -> FakeCallRunner:
        runner = FakeCallRunner(env["ACDKIT_REDIS_URL"], outcomes, **kw).start()
        made.append(runner)
        return runner

    yield start
    for runner in made:
        runner.stop()
        assert runner.errors == []


def test_no_answer_twice_then_answered(serve: Callable[..., FakeCallRunner]) -> None:
    fake = serve(A.NO_ANSWER, A.NO_ANSWER, A.ANSWERED)
    book("cb1")
    for n, interval in ((1, 60), (2, 300)):
        before = time.time()
        reserve("cb1")
        work()
        task = get("cb1")
        assert (task.state, task.attempts) == (TaskState.SCHEDULED, n)
        assert task.due_at is not None
        assert before + interval <= task.due_at <= time.time() + interval
        assert promote(task.due_at) == ["cb1"]
    reserve("cb1")
    work()
    task = get("cb1")
    assert (task.state, task.attempts, task.outcome) == (TaskState.COMPLETED, 3, "answered")
    assert [(a.n, a.outcome, a.decided) for a in attempts("cb1")] == [
        (1, A.NO_ANSWER, "retry"), (2, A.NO_ANSWER, "retry"), (3, A.ANSWERED, "completed")]
    assert len(fake.commands) == 3 and fake.dropped == []
    assert history("cb1").count("attempt_no_answer") == 2
    assert on_store(lambda s: s.pending_for(NUMBER)) == []


def test_retries_exhausted_fail_with_a_follow_up_and_replay_via_the_cli(
        serve: Callable[..., FakeCallRunner], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACDKIT_CALLBACKS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("ACDKIT_CALLBACKS_FOLLOW_UP", "true")
    serve(A.BUSY, A.NO_ANSWER)
    book("cb1")
    reserve("cb1")
    work()
    promote(get("cb1").due_at or 0)
    reserve("cb1")
    work()
    task = get("cb1")
    assert (task.state, task.attempts) == (TaskState.FAILED, 2)
    assert task.outcome == "no_answer after 2 attempts"
    follow = get("cb1-fu")
    assert (follow.kind, follow.state, follow.number) == (TaskKind.OUTBOUND, TaskState.QUEUED,
                                                          NUMBER)
    agent = on_store(lambda s: s.pool.get_agent("a1"))
    assert agent is not None and agent.task_id is None
    assert on_store(lambda s: s.pending_for(NUMBER)) == []

    cli = CliRunner()
    result = cli.invoke(main, ["callbacks", "replay", "cb1"])
    assert result.exit_code == 0, result.output
    task = get("cb1")
    assert (task.state, task.attempts) == (TaskState.QUEUED, 0)
    assert [t.id for t in on_store(lambda s: s.pending_for(NUMBER))] == ["cb1"]
    events = history("cb1")
    assert events.index("attempt_busy") < events.index("fail") < events.index("replayed")
    listed = cli.invoke(main, ["callbacks", "list", "--state", "queued", "--json"])
    assert '"id": "cb1"' in listed.output
    shown = cli.invoke(main, ["callbacks", "show", "cb1", "--json"])
    assert shown.exit_code == 0, shown.output
    story = json.loads(shown.output)[0]
    assert [a["outcome"] for a in story["attempts"]] == ["busy", "no_answer"]
    assert story["history"][-1]["event"] == "replayed" and story["task"]["state"] == "queued"
    again = cli.invoke(main, ["callbacks", "replay", "cb1"])
    assert again.exit_code == 77 and "only a failed or expired" in again.output


def test_a_callback_expires_when_its_next_try_would_be_too_late(
        serve: Callable[..., FakeCallRunner], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACDKIT_CALLBACKS_EXPIRE_AFTER", "100")
    serve(A.NO_ANSWER)
    book("cb1", created=time.time() - 50)  # the 60 s retry would be past the deadline
    reserve("cb1")
    work()
    task = get("cb1")
    assert (task.state, task.attempts, task.outcome) == (
        TaskState.EXPIRED, 1, "expired after no_answer")
    long_ago = time.time() - 200
    book("cb2", created=long_ago, place=long_ago)  # overdue while it waits in line
    assert promote(time.time()) == []
    assert (get("cb2").state, get("cb2").outcome) == (TaskState.EXPIRED, "expired")
    assert on_store(lambda s: s.pending_for(NUMBER)) == []


def test_an_agent_that_does_not_answer_sends_it_back_with_its_place(
        serve: Callable[..., FakeCallRunner]) -> None:
    fake = serve(A.AGENT_NO_ANSWER, A.ANSWERED)
    place = time.time() - 500
    book("cb1", place=place)
    score = on_store(lambda s: s.redis.hget(s.keys.task("cb1"), "score"))
    reserve("cb1")
    work()
    task = get("cb1")
    assert (task.state, task.attempts, task.enqueued_at) == (TaskState.QUEUED, 0, place)
    assert on_store(lambda s: s.redis.hget(s.keys.task("cb1"), "score")) == score
    agent = on_store(lambda s: s.pool.get_agent("a1"))
    assert agent is not None and (agent.state, agent.misses) == (AgentState.WRAP_UP, 1)
    reserve("cb1", "a2")
    work()
    assert (get("cb1").state, get("cb1").attempts) == (TaskState.COMPLETED, 1)
    assert [(a.n, a.agent_id, a.outcome) for a in attempts("cb1")] == [
        (1, "a1", A.AGENT_NO_ANSWER), (2, "a2", A.ANSWERED)]
    assert [c["agent_leg"] for c in fake.commands] == ["cb-cb1-1-a", "cb-cb1-2-a"]


def test_two_jobs_at_once_push_one_command(serve: Callable[..., FakeCallRunner]) -> None:
    fake = serve(A.NO_ANSWER, delay=0.5)
    book("cb1")
    reserve("cb1")
    config = settings()

    async def both() -> list[str]:
        def one() -> Awaitable[str]:
            return with_store(config, lambda s: dial_back_of(s, config).run("cb1"))
        return list(await asyncio.gather(one(), one()))

    assert sorted(asyncio.run(both())) == ["locked", "no_answer"]
    assert len(fake.commands) == 1 and len(attempts("cb1")) == 1


def test_a_killed_worker_is_recovered_without_a_second_command(
        serve: Callable[..., FakeCallRunner], env: dict[str, str]) -> None:
    fake = serve(None)  # takes the command, rings the agent, then nothing yet
    book("cb1")
    reserve("cb1")
    code = "from acdkit.jobs import dial_back; dial_back('cb1')"
    job = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env})
    try:
        wait_for(lambda: len(fake.commands) == 1, "the job's command")
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    wait_for(lambda: not on_store(lambda s: s.dial_lock_held("cb1")), "the lock to expire")
    jobs = RqJobQueue(env["ACDKIT_REDIS_URL"])
    try:
        jobs.queue("callbacks").empty()  # reserve() queued it: as if it ran and failed
        assert on_store(lambda s: recover_callbacks(s, jobs)) == ["dial-cb1-1"]
        assert on_store(lambda s: recover_callbacks(s, jobs)) == []  # queued: nothing to do
        assert len(jobs.queue("callbacks")) == 1  # a queued job is not queued twice
    finally:
        jobs.close()
    late = threading.Thread(target=lambda: asyncio.run(
        finish_later(env["ACDKIT_REDIS_URL"], "cb1", 1, A.NO_ANSWER, 1.0)))
    late.start()
    work()  # the re-run waits for attempt 1 instead of asking again
    late.join()
    task = get("cb1")
    assert (task.state, task.attempts) == (TaskState.SCHEDULED, 1)
    assert [(a.n, a.outcome, a.decided) for a in attempts("cb1")] == [(1, A.NO_ANSWER, "retry")]
    assert len(fake.commands) + len(fake.dropped) == 1
    assert history("cb1").count("attempt_requested") == 1


def test_cancel_and_purge_via_the_cli(env: dict[str, str]) -> None:
    book("cb1")
    book("cb2", created=time.time() - 10)
    cli = CliRunner()
    assert cli.invoke(main, ["callbacks", "cancel", "cb1"]).exit_code == 0
    assert get("cb1").state is TaskState.CANCELLED
    assert cli.invoke(main, ["callbacks", "cancel", "cb1"]).exit_code == 77
    kept = cli.invoke(main, ["callbacks", "purge", "--older-than", "1h", "--json"])
    assert kept.exit_code == 0 and kept.output.strip() == "[]"
    time.sleep(1.1)
    purged = cli.invoke(main, ["callbacks", "purge", "--older-than", "1s", "--json"])
    assert '"id": "cb1"' in purged.output and "cb2" not in purged.output
    assert on_store(lambda s: s.pool.get_task("cb1")) is None
    assert "purged" in history("cb1")  # the story stays
    assert cli.invoke(main, ["callbacks", "show", "cb1"]).exit_code == 66


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_acdkit_worker_runs_dial_backs_and_stops_on_sigterm(
        serve: Callable[..., FakeCallRunner], env: dict[str, str]) -> None:
    serve(A.BUSY)
    book("cb1")
    reserve("cb1")
    worker = subprocess.Popen([sys.executable, "-m", "acdkit", "worker"],
                              env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: get("cb1").state is TaskState.SCHEDULED, "the worker's dial_back")
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "maintenance: connected to Redis" in err and "worker: stopped" in err
    assert [a.outcome for a in attempts("cb1")] == [A.BUSY]
