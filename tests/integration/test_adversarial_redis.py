"""Hostile Redis contents: whoever can write to Redis must not run code in a worker, nor make
acdkit dial anything. Real redis-server, real RQ, the worker class ``acdkit worker`` runs.

- a job naming any function but acdkit's own fails, and nothing is imported or called;
- a callback (success, failure, stopped) named in a job hash is never imported;
- hostile task and agent hashes are typed errors (``InvalidInput``), never a crash or a dial.
docs/security-policy.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from poolkit import RULES, T0
from rq import Callback, Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from acdkit.cli.worker import Supervisor
from acdkit.core.agents import Agent
from acdkit.core.errors import InvalidInput
from acdkit.core.tasks import Task, TaskKind
from acdkit.jobqueue import JOB_FUNCTIONS, QUEUES
from acdkit.store.codec import agent_from_hash, agent_to_hash, task_from_hash, task_to_hash
from acdkit.store.connection import connect
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration
UNIMPORTED = "this"  # the Zen of Python: imported by nothing in acdkit or its tests


@pytest.fixture
def connection(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    monkeypatch.delenv("ACDKIT_CONFIG", raising=False)
    sys.modules.pop(UNIMPORTED, None)
    made = redis.Redis.from_url(redis_url)
    yield made
    made.close()


def hostile(connection: redis.Redis, func: str, *args: str, queue: str = "callbacks",
            **options: object) -> Job:
    """Enqueue ``func`` as anyone with write access to Redis can: plain RQ, JSON."""
    q = Queue(queue, connection=connection, serializer=JSONSerializer)
    return q.enqueue(func, *args, **options)  # type: ignore[arg-type]


def work(redis_url: str) -> None:
    """What ``acdkit worker --burst`` does: acdkit's RQ worker until the queues are empty."""
    Supervisor(redis_url, "adversary-test", burst=True).run()


def status(connection: redis.Redis, job: Job) -> JobStatus | None:
    return Job.fetch(job.id, connection=connection, serializer=JSONSerializer).get_status()


@pytest.mark.parametrize("queue", QUEUES)
def test_a_job_naming_a_stdlib_function_never_runs(connection: redis.Redis, redis_url: str,
                                                   tmp_path: Path, queue: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "ran"
    job = hostile(connection, "os.mkdir", str(marker), queue=queue)
    with caplog.at_level(logging.ERROR):
        work(redis_url)
    assert not marker.exists(), "os.mkdir ran from a job in Redis"
    assert status(connection, job) is JobStatus.FAILED
    assert "'os.mkdir', which is not an acdkit job: refused" in caplog.text


@pytest.mark.parametrize("func", ["this.nothing", "this", "acdkit.jobs.this",
                                  "acdkit.jobs.dial_back.__globals__"])
def test_a_job_naming_a_module_imports_nothing(connection: redis.Redis, redis_url: str,
                                               func: str) -> None:
    job = hostile(connection, func)
    work(redis_url)
    assert UNIMPORTED not in sys.modules, f"{func!r} was imported from a job in Redis"
    assert status(connection, job) is JobStatus.FAILED


def test_callbacks_named_in_redis_are_never_imported(connection: redis.Redis, redis_url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """acdkit enqueues no callbacks: a failure callback in a job hash is refused, and so is a
    success callback on a job that is acdkit's own."""
    failing = hostile(connection, "os.mkdir", "/", on_failure=Callback("this.failed"))
    ours = hostile(connection, "acdkit.jobs.promote_due", on_success=Callback("this.done"),
                   on_stopped=Callback("this.stopped"))
    with caplog.at_level(logging.ERROR):
        work(redis_url)
    assert UNIMPORTED not in sys.modules
    assert status(connection, failing) is JobStatus.FAILED
    assert status(connection, ours) is JobStatus.FINISHED  # acdkit's own job still runs
    assert "names a failure callback 'this.failed': refused" in caplog.text
    assert "names a success callback 'this.done': refused" in caplog.text


def test_a_job_hash_rewritten_in_place_is_refused(connection: redis.Redis,
                                                  redis_url: str, tmp_path: Path) -> None:
    """An acdkit job whose hash is edited to name another function (or a method of an
    'instance') before a worker takes it."""
    marker = tmp_path / "ran"
    job = hostile(connection, "acdkit.jobs.promote_due")
    data = json.dumps(["os.mkdir", None, [str(marker)], {}]).encode()
    connection.hset(Job.key_for(job.id), "data", data)  # type: ignore[no-untyped-call]
    other = hostile(connection, "acdkit.jobs.promote_due")
    connection.hset(Job.key_for(other.id), "data",  # type: ignore[no-untyped-call]
                    json.dumps(["mkdir", {"x": 1}, [str(marker)], {}]).encode())
    work(redis_url)
    assert not marker.exists()
    assert status(connection, job) is status(connection, other) is JobStatus.FAILED


def test_the_allowlist_holds_only_acdkit_jobs_that_exist() -> None:
    import importlib

    for name in JOB_FUNCTIONS:
        module, _, attr = name.rpartition(".")
        assert module == "acdkit.jobs" and callable(getattr(importlib.import_module(module), attr))


# -- hostile task and agent hashes --------------------------------------------------------

TASK = task_to_hash(Task(id="t1", kind=TaskKind.CALLBACK, skill="sales", created_at=T0,
                         enqueued_at=T0, number="+12125550142"))
AGENT = agent_to_hash(Agent(id="a1", skills={"sales": 5}, reach="PJSIP/agent1"))
hostile_values = st.one_of(st.text(max_size=40), st.sampled_from(
    ["nan", "inf", "-inf", "1e999", "", "{", "[]", "{\"a\": 1}", "{\"a\": null}", "\x00",
     "PJSIP/agent1&Local/100@x", "ready\r\nx", "9" * 400]))


def _mutations(base: dict[str, str]) -> st.SearchStrategy[dict[str, str]]:
    fields = sorted(base)
    return st.one_of(
        st.builds(lambda k, v: {**base, k: v}, st.sampled_from(fields), hostile_values),
        st.builds(lambda k: {x: y for x, y in base.items() if x != k}, st.sampled_from(fields)),
        st.builds(lambda k, v: {**base, k: v}, st.text(min_size=1, max_size=10), hostile_values),
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations(TASK))
def test_a_hostile_task_hash_is_a_typed_error_or_a_valid_task(raw: dict[str, str]) -> None:
    try:
        task = task_from_hash(raw)
    except InvalidInput:
        return
    assert task_from_hash(task_to_hash(task)) == task


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_mutations(AGENT))
def test_a_hostile_agent_hash_is_a_typed_error_or_a_valid_agent(raw: dict[str, str]) -> None:
    try:
        agent = agent_from_hash(raw)
    except InvalidInput:
        return
    assert agent_from_hash(agent_to_hash(agent)) == agent


async def _stored(redis_url: str, key_of: str, raw: dict[str, str]) -> None:
    pool = Pool(await connect(redis_url), RULES)
    try:
        await pool.redis.delete(pool.keys.task("t1"), pool.keys.agent("a1"))
        if key_of == "task":
            await pool.redis.hset(pool.keys.task("t1"), mapping=raw)
            with pytest.raises(InvalidInput):
                await pool.get_task("t1")
        else:
            await pool.redis.hset(pool.keys.agent("a1"), mapping=raw)
            with pytest.raises(InvalidInput):
                await pool.get_agent("a1")
    finally:
        await pool.close()


@pytest.mark.parametrize(("key_of", "field", "value"), [
    ("task", "state", "dialing"), ("task", "created_at", "nan"), ("task", "kind", "shell"),
    ("task", "attributes", "[1, 2]"), ("agent", "state", "god"),
    ("agent", "skills", "{\"x\": \"9; rm\"}"),
    ("agent", "misses", "1e9"), ("agent", "mode", "exec"),
])
def test_a_hostile_record_in_redis_reads_as_a_typed_error(redis_url: str, key_of: str,
                                                         field: str, value: str) -> None:
    base = TASK if key_of == "task" else AGENT
    asyncio.run(_stored(redis_url, key_of, {**base, field: value}))
