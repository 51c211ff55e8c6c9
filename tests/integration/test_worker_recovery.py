"""Workers that die or lose Redis: real `acdkit worker` processes, real redis-servers, real RQ.

A SIGKILLed worker's ``dial_back`` job stays ``started`` in RQ for job timeout + 60 s; the
recovery round of another worker removes it and enqueues it again once the dial lock is
free (``RqJobQueue.requeue``). A worker outlives a Redis restart, and waits for Redis when it
starts without one. Workers run in their own process group: a SIGKILL takes RQ's scheduler
process (a child of the worker) down with it, as a machine crash would.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from test_dial_back_job import (  # noqa: F401  (env: a fixture)
    attempts,
    book,
    env,
    get,
    history,
    on_store,
    promote,
    reserve,
    settings,
    wait_for,
)
from tests.conftest import free_port

from acdkit.cli.worker import PUBSUB_GRACE, SCHEDULER_GRACE, AcdWorker
from acdkit.core.callbacks import DialOutcome
from acdkit.core.tasks import TaskState
from acdkit.jobqueue import RqJobQueue
from acdkit.services.callbacks import DIAL_BACK, QUEUE
from acdkit.testing import FakeCallRunner, finish_later

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("env")]
A = DialOutcome
PROMOTE = "acdkit.jobs.promote_due"


class WorkerProcess:
    """``acdkit worker --name <name>`` in a process group of its own, logging to ``log``."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "acdkit", "worker", "--name", self.name],
                stdout=out, stderr=out, start_new_session=True)
        return self

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and its scheduler process."""
        assert self.proc is not None
        with _gone():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM (RQ's warm shutdown); the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.kill()  # anything the worker left in its group
        return code


class _gone:
    """Suppress ProcessLookupError (the process group is gone already)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *rest: object) -> bool:
        return kind is ProcessLookupError


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[str], WorkerProcess]]:
    made: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        made.append(WorkerProcess(name, tmp_path / f"{name}.log").start())
        return made[-1]

    yield start
    for worker in made:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill()


@pytest.fixture
def jobs() -> Iterator[RqJobQueue]:
    queue = RqJobQueue(settings_url())
    yield queue
    queue.close()


def job_of(jobs: RqJobQueue, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=jobs.connection, serializer=JSONSerializer)
    except Exception:
        return None


def running_on(jobs: RqJobQueue, job_id: str) -> str | None:
    """The worker that runs job ``job_id`` now, or None."""
    job = job_of(jobs, job_id)
    if job is None or jobs.status(job_id) != "started":
        return None
    return job.worker_name


def lock_held(task_id: str) -> bool:
    return on_store(lambda s: s.dial_lock_held(task_id))


def finish(task_id: str, n: int, outcome: DialOutcome) -> None:
    """End attempt ``n`` as serve does."""
    asyncio.run(finish_later(settings_url(), task_id, n, outcome, 0.0))


def settings_url() -> str:
    return settings().redis.url


# -- a SIGKILLed worker ---------------------------------------------------------------------------


def test_a_sigkilled_workers_callback_is_dialed_again_by_a_new_worker_within_seconds(
        workers: Callable[[str], WorkerProcess], jobs: RqJobQueue) -> None:
    with FakeCallRunner(settings_url(), [None, A.ANSWERED]) as fake:
        book("cb1")
        reserve("cb1")
        first = workers("w1")
        wait_for(lambda: len(fake.commands) == 1, "the first worker's command", 30)
        first.kill()
        killed = time.monotonic()
        assert running_on(jobs, "dial-cb1-1") == "w1"  # RQ still holds it for ~11 minutes

        second = workers("w2")
        wait_for(lambda: running_on(jobs, "dial-cb1-1") == "w2" and lock_held("cb1"),
                 "the job on the new worker", 30)
        recovered_after = time.monotonic() - killed
        assert recovered_after < 20, recovered_after
        # The re-run resumes attempt 1 (serve still has that call): nothing dialed twice.
        assert len(fake.commands) == 1 and history("cb1").count("attempt_requested") == 1

        finish("cb1", 1, A.NO_ANSWER)
        wait_for(lambda: get("cb1").state is TaskState.SCHEDULED, "the retry", 30)
        assert promote(get("cb1").due_at or 0.0) == ["cb1"]  # as maintenance would, then
        reserve("cb1")  # the dispatcher's part; enqueues dial-cb1-2
        wait_for(lambda: get("cb1").state is TaskState.COMPLETED, "attempt 2 on w2", 30)

    done = attempts("cb1")
    assert [(a.n, a.outcome) for a in done] == [(1, A.NO_ANSWER), (2, A.ANSWERED)]
    assert done[0].ended_at is not None and done[1].requested_at >= done[0].ended_at
    assert [c["agent_leg"] for c in fake.commands] == ["cb-cb1-1-a", "cb-cb1-2-a"]
    assert fake.dropped == []
    log = second.text
    assert log.count("re-enqueued dial-cb1-1") == 1, log
    assert "job dial-cb1-1: started at" in log and "no live worker runs it: removed" in log
    assert second.stop() == 0


def test_requeue_leaves_a_live_job_alone_and_replaces_a_dead_one(
        workers: Callable[[str], WorkerProcess], jobs: RqJobQueue) -> None:
    def requeue(stale_after: float) -> bool:
        return jobs.requeue(QUEUE, DIAL_BACK, "cb1", job_id="dial-cb1-1",
                            stale_after=stale_after)

    with FakeCallRunner(settings_url(), [None]) as fake:
        book("cb1")
        reserve("cb1")
        assert not requeue(0.0)  # queued and in its queue: left alone
        worker = workers("w1")
        wait_for(lambda: len(fake.commands) == 1, "the worker's command", 30)
        assert not requeue(600.0)  # started lately by a live worker
        worker.kill()
    assert not requeue(600.0)  # its registration lives on (RQ: job timeout + 60 s)
    started = StartedJobRegistry(QUEUE, connection=jobs.connection, serializer=JSONSerializer)
    assert started.get_job_ids(cleanup=False) == ["dial-cb1-1"]

    jobs.connection.delete("rq:worker:w1")  # as when its registration expires
    assert requeue(600.0)
    assert jobs.status("dial-cb1-1") == "queued"
    assert started.get_job_ids(cleanup=False) == []  # no entry left for RQ to fail it by
    assert jobs.queue(QUEUE).job_ids == ["dial-cb1-1"]
    assert not requeue(600.0)  # and not queued twice


def test_requeue_replaces_a_job_taken_off_its_queue_by_a_worker_that_died(
        jobs: RqJobQueue) -> None:
    job_id = jobs.enqueue(QUEUE, PROMOTE, job_id="promote-1")
    jobs.connection.lrem(jobs.queue(QUEUE).key, 1, job_id)  # a worker popped it, then died
    assert jobs.status(job_id) == "queued"
    assert not jobs.requeue(QUEUE, PROMOTE, job_id=job_id, stale_after=600.0)  # maybe alive
    time.sleep(0.05)
    assert jobs.requeue(QUEUE, PROMOTE, job_id=job_id, stale_after=0.01)
    assert jobs.queue(QUEUE).job_ids == [job_id]


# -- Redis away -----------------------------------------------------------------------------------


class AofRedis:
    """A redis-server on ``port`` with its append-only file in ``where``: killed and
    restarted, it comes back with its data (as in the lab: appendonly, fsync always)."""

    def __init__(self, port: int, where: Path) -> None:
        self.port = port
        self.where = where
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> AofRedis:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.where),
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            wait_for(lambda: _answers(client), f"redis-server on port {self.port}", 10)
        finally:
            client.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
        return False


@pytest.fixture
def own_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AofRedis]:
    """A redis-server of this test's own (not started yet), set as ACDKIT_REDIS_URL."""
    server = AofRedis(free_port(), tmp_path)
    monkeypatch.setenv("ACDKIT_REDIS_URL", server.url)
    yield server
    server.kill()


def run_job_after(jobs_url: str, job_id: str, at: float | None = None) -> None:
    """Enqueue a job (for ``at``: RQ's scheduler must run) and wait until a worker ran it."""
    queue = RqJobQueue(jobs_url)
    try:
        queue.enqueue(QUEUE, PROMOTE, job_id=job_id, at=at)
        wait_for(lambda: queue.status(job_id) == "finished", f"job {job_id}", 30)
    finally:
        queue.close()


def test_a_worker_outlives_a_redis_restart_under_a_running_job(
        own_redis: AofRedis, workers: Callable[[str], WorkerProcess]) -> None:
    own_redis.start()
    with FakeCallRunner(own_redis.url, [None]) as fake:
        book("cb1")
        reserve("cb1")
        worker = workers("w1")
        wait_for(lambda: len(fake.commands) == 1, "the worker's command", 30)
    own_redis.kill()  # under the running dial_back
    wait_for(lambda: "waiting for it" in worker.text, "the worker to wait for Redis", 30)
    assert worker.alive()
    own_redis.start()

    # The job Redis took away is recovered (its worker is gone) and resumes attempt 1.
    wait_for(lambda: "re-enqueued dial-cb1-1" in worker.text, "the recovery", 30)
    wait_for(lambda: lock_held("cb1"), "the resumed job", 30)
    finish("cb1", 1, A.NO_ANSWER)
    wait_for(lambda: get("cb1").state is TaskState.SCHEDULED, "the retry", 30)
    run_job_after(own_redis.url, "after-restart")
    run_job_after(own_redis.url, "scheduled-after-restart", at=time.time() + 1)
    assert worker.alive()
    assert history("cb1").count("attempt_requested") == 1
    log = worker.text
    assert "worker: lost Redis" in log or "the RQ worker stopped" in log, log
    assert log.count("worker: connected to Redis") == 2, log
    assert worker.stop() == 0
    assert "worker: stopped" in worker.text


def test_a_worker_started_without_redis_waits_for_it(
        own_redis: AofRedis, workers: Callable[[str], WorkerProcess]) -> None:
    worker = workers("w1")
    wait_for(lambda: "waiting for it" in worker.text, "the waiting line", 30)
    line = next(ln for ln in worker.text.splitlines() if "waiting for it" in ln)
    assert f"Redis at {own_redis.url} is unavailable" in line
    time.sleep(1.5)
    assert worker.alive()
    own_redis.start()
    run_job_after(own_redis.url, "first")
    assert "worker: connected to Redis" in worker.text
    assert worker.stop() == 0


def test_sigterm_while_waiting_for_redis_stops_the_worker(
        own_redis: AofRedis, workers: Callable[[str], WorkerProcess]) -> None:
    worker = workers("w1")
    wait_for(lambda: "waiting for it" in worker.text, "the waiting line", 30)
    assert worker.stop() == 0
    assert "worker: stopped" in worker.text


def _deaf() -> None:
    """A scheduler process that got SIGTERM before RQ installed its handlers: it runs on."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(120)


def test_a_scheduler_deaf_to_sigterm_cannot_hold_the_worker(own_redis: AofRedis) -> None:
    """RQ's own stop_scheduler() joins without a bound: a worker stopped while its scheduler
    had not installed its handlers yet never ended (seen once under load in the suite)."""
    own_redis.start()
    rq_worker = AcdWorker([Queue(QUEUE, connection=redis.Redis.from_url(own_redis.url))],
                          connection=redis.Redis.from_url(own_redis.url))
    rq_worker.scheduler = RQScheduler([QUEUE], connection=rq_worker.connection)
    process = multiprocessing.get_context("fork").Process(target=_deaf)
    process.start()
    rq_worker.scheduler._process = process
    time.sleep(0.2)  # it ignores SIGTERM from now on
    started = time.monotonic()
    rq_worker.stop_scheduler()
    took = time.monotonic() - started
    assert not process.is_alive() and process.exitcode == -signal.SIGKILL
    assert SCHEDULER_GRACE <= took < SCHEDULER_GRACE + 5


def test_a_listener_that_read_its_unsubscribe_cannot_hold_the_worker(
        own_redis: AofRedis) -> None:
    """RQ unsubscribes, then stops its command listener and joins it without a bound. A
    listener that read the UNSUBSCRIBE reply first waits a minute for a new subscription, and
    the worker's stop with it (seen in the suite: a SIGTERMed worker logged "unsubscribing"
    and then nothing for 30 s)."""
    own_redis.start()
    connection = redis.Redis.from_url(own_redis.url)
    rq_worker = AcdWorker([Queue(QUEUE, connection=connection)], connection=connection)
    rq_worker.subscribe()
    assert rq_worker.pubsub is not None and rq_worker.pubsub_thread is not None
    wait_for(lambda: rq_worker.pubsub.subscribed, "the subscription", 10)
    rq_worker.pubsub.unsubscribe()  # the reply reaches the listener before the stop does
    wait_for(lambda: not rq_worker.pubsub.subscribed, "the listener reading the reply", 10)
    started = time.monotonic()
    rq_worker.unsubscribe()
    took = time.monotonic() - started
    assert took < PUBSUB_GRACE + 1
    assert connection.pubsub_numsub(rq_worker.pubsub_channel_name) == [
        (rq_worker.pubsub_channel_name.encode(), 0)]
