"""``ports.JobQueue`` on RQ: jobs by dotted path, string arguments, the JSON serializer.

RQ 3.0 facts this relies on (read in rq/queue.py and rq/scripts.py of 3.0.0; see
docs/architecture.md §7):
``enqueue(..., job_id=X, unique=True)`` checks that no job hash ``rq:job:X`` exists and saves
and pushes the job in one Lua script, raising ``DuplicateJobError`` otherwise; without
``unique`` an existing id is silently replaced and queued twice. The hash of a finished job
lives ``result_ttl`` (500 s), a failed one ``failure_ttl`` (a year), so an id is "taken" long
after its job ran: ``enqueue`` here deletes the record of a job that is over (finished,
failed, stopped, cancelled) and enqueues again, and leaves a queued, scheduled, deferred or
started one alone. ``enqueue_at`` needs a worker running with the scheduler
(``acdkit worker`` does).

Only acdkit's own job functions run (``JOB_FUNCTIONS``, docs/security-policy.md): RQ's
``Job.func`` imports whatever dotted path the job hash in Redis names, and its success,
failure and stopped callbacks likewise, so anyone who can write to Redis could make a worker
call ``os.system``. ``AcdJob`` checks the name before RQ imports anything; a refused job
fails (``ForbiddenJob``, logged), having imported and called nothing.

A SIGKILLed worker's job stays ``started`` until its heartbeat (job timeout + 60 s for RQ's
``SimpleWorker``) expires and a maintenance run notices: meanwhile its id is taken.
``requeue`` (used by the recovery rounds, through ``Recovery``) removes such a job when no
live worker runs it and enqueues it again; the caller's lock (the dial lock) keeps two runs
from working at once.
"""

from __future__ import annotations

import logging
import queue as stdqueue
import threading
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from acdkit.core.errors import InvalidInput
from acdkit.store.primary import Primary, sync_client

log = logging.getLogger(__name__)

QUEUES = ("callbacks", "requests", "speech")
JOB_TIMEOUT = 600  # seconds; a dial_back waits up to 2 x ring timeout + 30 s for its outcome
# Every function an acdkit worker may run, by the dotted path its jobs are enqueued with.
JOB_FUNCTIONS = frozenset({
    "acdkit.jobs.dial_back", "acdkit.jobs.promote_due", "acdkit.jobs.recover",
    "acdkit.jobs.transcribe", "acdkit.jobs.deliver_reply",
})
_ALIVE = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED,
                    JobStatus.STARTED, JobStatus.CREATED})


class ForbiddenJob(InvalidInput):
    """A job in Redis names a function that is not one of acdkit's jobs: never run."""


class AcdJob(Job):
    """RQ's ``Job`` that resolves only ``JOB_FUNCTIONS`` and no callbacks at all.

    RQ's worker reads ``job.func`` inside its failure handling, so a refusal fails the job
    (and a callback refusal drops only that callback) without stopping the worker.
    """

    @property
    def func(self) -> Any:
        name = self.func_name
        if name not in JOB_FUNCTIONS or self.instance is not None:
            log.error("job %s names %r, which is not an acdkit job: refused, nothing imported "
                      "or run (who can write to this Redis? docs/security-policy.md)",
                      self.id, str(name)[:120])
            raise ForbiddenJob(f"job {self.id}: {str(name)[:120]!r} is not an acdkit job")
        return super().func

    @property
    def success_callback(self) -> None:
        return self._no_callback("success", self._success_callback_name)

    @property
    def failure_callback(self) -> None:
        return self._no_callback("failure", self._failure_callback_name)

    @property
    def stopped_callback(self) -> None:
        return self._no_callback("stopped", self._stopped_callback_name)

    def _no_callback(self, kind: str, name: str | None) -> None:
        # acdkit enqueues no callbacks: one named in Redis came from someone else.
        if name:
            log.error("job %s names a %s callback %r: refused, not imported or run",
                      self.id, kind, str(name)[:120])


class RqJobQueue:
    """Enqueue acdkit jobs on RQ at ``redis_url`` (a URL, or a ``Primary`` reached through
    sentinels) on its own, synchronous connection."""

    def __init__(self, redis_url: str | Primary, *, job_timeout: int = JOB_TIMEOUT,
                 socket_timeout: float | None = None) -> None:
        self.connection = sync_client(redis_url, socket_timeout=socket_timeout,
                                      connect_timeout=socket_timeout)
        self.job_timeout = job_timeout

    def close(self) -> None:
        self.connection.close()

    def queue(self, name: str) -> Queue:
        return Queue(name, connection=self.connection, serializer=JSONSerializer)

    def enqueue(self, queue: str, func: str, *args: str, job_id: str | None = None,
                at: float | None = None) -> str:
        """Enqueue ``func`` (a dotted path) with string ``args`` on ``queue``; return the job
        id. With ``job_id`` a job still queued, scheduled or running is not queued twice (its
        id is returned); one that is over is replaced. ``at`` (epoch seconds) delays it."""
        if job_id is None:
            return self._enqueue(queue, func, args, None, at)
        self._enqueue_unique(queue, func, args, job_id, at, None)
        return job_id

    def requeue(self, queue: str, func: str, *args: str, job_id: str, stale_after: float,
                at: float | None = None) -> bool:
        """Enqueue job ``job_id`` for a recovery round; True when it was enqueued now.

        As ``enqueue``, but a job no live worker runs is removed (with its registry entries)
        and enqueued again: one ``started`` by a worker whose registration is gone, or
        started more than ``stale_after`` seconds ago, or one ``queued`` more than
        ``stale_after`` s ago that no queue list holds (its worker died between taking and
        starting it). Call it only while nobody holds the lock that job's work takes (the
        dial lock, whose lifetime is ``stale_after``): a live job holds it from its start."""
        return self._enqueue_unique(queue, func, args, job_id, at, stale_after)

    def _enqueue_unique(self, queue: str, func: str, args: tuple[str, ...], job_id: str,
                        at: float | None, stale_after: float | None) -> bool:
        for _ in range(2):
            try:
                self._enqueue(queue, func, args, job_id, at)
                return True
            except DuplicateJobError:
                if not self._clear(job_id, stale_after):
                    return False
        return False  # a third writer got in between both tries: it is queued

    def _enqueue(self, queue: str, func: str, args: tuple[str, ...], job_id: str | None,
                 at: float | None) -> str:
        options: dict[str, Any] = {"job_id": job_id, "unique": job_id is not None,
                                   "job_timeout": self.job_timeout}
        q = self.queue(queue)
        if at is None:
            job = q.enqueue(func, *args, **options)
        else:
            job = q.enqueue_at(datetime.fromtimestamp(at, UTC), func, *args, **options)
        return str(job.id)

    def _clear(self, job_id: str, stale_after: float | None) -> bool:
        """Delete the record of job ``job_id`` if it is over (or, with ``stale_after``, stuck);
        True when the id is free. The job's hash is watched: a worker that starts or ends the
        job meanwhile, or another recovery round, makes this a no (False)."""
        with self.connection.pipeline() as pipe:
            pipe.watch(Job.key_for(job_id))  # type: ignore[no-untyped-call]  # redis-py 8.1
            try:
                job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
            except NoSuchJobError:
                return True
            status = job.get_status(refresh=False)
            why = None
            if status in _ALIVE:
                why = self._stuck(job, status, stale_after) if stale_after is not None else None
                if why is None:
                    log.debug("job %s is %s: not queued twice", job_id, status)
                    return False
            self._forget_lost_executions(job)
            pipe.multi()
            try:
                job.delete(pipeline=pipe)
                pipe.execute()
            except (redis.exceptions.WatchError, ValueError):  # changed, or an execution expired
                return False
        if why is not None:
            log.warning("job %s: %s and no live worker runs it: removed", job_id, why)
        return True

    def _stuck(self, job: Job, status: JobStatus, stale_after: float) -> str | None:
        """Why job ``job`` (``status``) is stuck, or None while a worker may still run it."""
        now = datetime.now(UTC)
        if status is JobStatus.STARTED:
            if not self._worker_alive(job.worker_name or ""):
                return f"started by worker {job.worker_name!r}, which is gone"
            if job.started_at is None or (now - job.started_at).total_seconds() > stale_after:
                return f"started at {job.started_at} by worker {job.worker_name!r}"
        elif status is JobStatus.QUEUED and job.enqueued_at is not None and \
                (now - job.enqueued_at).total_seconds() > stale_after and not self._listed(job):
            return f"queued at {job.enqueued_at} but in no queue"
        return None

    def _worker_alive(self, name: str) -> bool:
        """True while RQ worker ``name`` is registered and did not register its death."""
        key = SimpleWorker.redis_worker_namespace_prefix + name
        return bool(name) and bool(self.connection.exists(key)) and \
            not self.connection.hexists(key, "death")

    def _listed(self, job: Job) -> bool:
        """True when ``job`` waits in its queue's list or RQ's intermediate list."""
        q = self.queue(job.origin)
        return any(self.connection.lpos(key, job.id) is not None
                   for key in (q.key, q.intermediate_queue_key))

    def _forget_lost_executions(self, job: Job) -> None:
        """Drop the registry entries of ``job``'s executions whose record expired: RQ's
        ``Job.delete`` reads every execution it lists and fails on a missing one."""
        executions = ExecutionRegistry(job.id, connection=self.connection)
        started = StartedJobRegistry(job.origin, connection=self.connection,
                                     serializer=JSONSerializer)
        for raw in cast(list[bytes], self.connection.zrange(executions.key, 0, -1)):
            execution = Execution(raw.decode(), job.id, self.connection)
            if not self.connection.exists(execution.key):
                self.connection.zrem(executions.key, execution.id)
                self.connection.zrem(started.key, execution.composite_key)

    def status(self, job_id: str) -> str | None:
        """The RQ status of job ``job_id`` (``queued``, ``finished``, ...), or None."""
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return None
        status = job.get_status(refresh=True)
        return str(status.value) if status is not None else None


class Requeuing(Protocol):
    """A ``ports.JobQueue`` that can also replace a stuck job (``RqJobQueue.requeue``)."""

    def enqueue(self, queue: str, func: str, *args: str, job_id: str | None = None,
                at: float | None = None) -> str: ...

    def requeue(self, queue: str, func: str, *args: str, job_id: str, stale_after: float,
                at: float | None = None) -> bool: ...


class Recovery:
    """``ports.JobQueue`` for one recovery round: ``enqueue`` replaces a stuck job
    (``requeue``) and ``enqueued`` lists the job ids it really enqueued (a job still waiting
    or running is left alone and not listed)."""

    def __init__(self, jobs: Requeuing, stale_after: float) -> None:
        self.jobs = jobs
        self.stale_after = stale_after
        self.enqueued: list[str] = []

    def enqueue(self, queue: str, func: str, *args: str, job_id: str | None = None,
                at: float | None = None) -> str:
        if job_id is None:
            job_id = self.jobs.enqueue(queue, func, *args, at=at)
            self.enqueued.append(job_id)
        elif self.jobs.requeue(queue, func, *args, job_id=job_id, stale_after=self.stale_after,
                               at=at):
            self.enqueued.append(job_id)
        return job_id


class BackgroundJobQueue:
    """``ports.JobQueue`` for an event loop: ``enqueue`` hands the job to one thread and
    returns its id at once, so a Redis that stalls never stalls the loop (``serve``).

    The id is the caller's ``job_id`` or a fresh one, so the return value is what
    ``RqJobQueue.enqueue`` would return; the thread keeps the order and RQ's ``unique``
    check. A failed enqueue is tried again (``retries``, ``backoff`` apart) and then logged:
    a dial-back's recovery round enqueues it again (services/maintenance.py)."""

    def __init__(self, jobs: RqJobQueue, *, retries: int = 5, backoff: float = 1.0,
                 max_pending: int = 10_000) -> None:
        self.jobs = jobs
        self.retries = retries
        self.backoff = backoff
        self._pending: stdqueue.Queue[tuple[str, str, tuple[str, ...], str, float | None]
                                      | None] = stdqueue.Queue(max_pending)
        self._thread = threading.Thread(target=self._run, name="rq-enqueue", daemon=True)
        self._thread.start()

    def enqueue(self, queue: str, func: str, *args: str, job_id: str | None = None,
                at: float | None = None) -> str:
        job_id = job_id or uuid.uuid4().hex  # a fresh id: unique is then a no-op
        try:
            self._pending.put_nowait((queue, func, args, job_id, at))
        except stdqueue.Full:
            log.error("job %s not enqueued: %d jobs wait for Redis", job_id,
                      self._pending.maxsize)
        return job_id

    def close(self, timeout: float = 5.0) -> None:
        """Enqueue what waits (up to ``timeout`` seconds), then close the connection."""
        self._pending.put(None)
        self._thread.join(timeout)
        self.jobs.close()

    def wait_idle(self) -> None:
        """Block until every job handed over so far was enqueued (or given up)."""
        self._pending.join()

    def _run(self) -> None:
        while (item := self._pending.get()) is not None:
            try:
                self._enqueue(*item)
            finally:
                self._pending.task_done()
        self._pending.task_done()

    def _enqueue(self, queue: str, func: str, args: tuple[str, ...], job_id: str,
                 at: float | None) -> None:
        for attempt in range(self.retries + 1):
            try:
                self.jobs.enqueue(queue, func, *args, job_id=job_id, at=at)
                return
            except redis.RedisError as err:
                log.warning("job %s: enqueue failed (%s); attempt %d of %d", job_id, err,
                            attempt + 1, self.retries + 1)
                threading.Event().wait(self.backoff * (attempt + 1))
        log.error("job %s (%s %s) not enqueued: Redis did not take it", job_id, func, args)
