"""``ports.JobQueue`` on RQ: jobs by dotted path, string arguments, the JSON serializer.

RQ 3.0 facts this relies on (read in rq/queue.py and rq/scripts.py of 3.0.0, DESIGN §7):
``enqueue(..., job_id=X, unique=True)`` checks that no job hash ``rq:job:X`` exists and saves
and pushes the job in one Lua script, raising ``DuplicateJobError`` otherwise; without
``unique`` an existing id is silently replaced and queued twice. The hash of a finished job
lives ``result_ttl`` (500 s), a failed one ``failure_ttl`` (a year), so an id is "taken" long
after its job ran: ``enqueue`` here deletes the record of a job that is over (finished,
failed, stopped, cancelled) and enqueues again, and leaves a queued, scheduled, deferred or
started one alone. ``enqueue_at`` needs a worker running with the scheduler
(``acdkit worker`` does).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)

QUEUES = ("callbacks", "requests", "speech")
JOB_TIMEOUT = 600  # seconds; a dial_back waits up to 2 x ring timeout + 30 s for its outcome
_ALIVE = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED,
                    JobStatus.STARTED, JobStatus.CREATED})


class RqJobQueue:
    """Enqueue acdkit jobs on RQ at ``redis_url`` (its own, synchronous connection)."""

    def __init__(self, redis_url: str, *, job_timeout: int = JOB_TIMEOUT) -> None:
        self.connection = redis.Redis.from_url(redis_url)
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
        for _ in range(2):
            try:
                return self._enqueue(queue, func, args, job_id, at)
            except DuplicateJobError:
                assert job_id is not None
                if not self._clear_if_over(job_id):
                    return job_id
        return job_id or ""  # a third writer got in between both tries: it is queued

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

    def _clear_if_over(self, job_id: str) -> bool:
        """Delete the record of job ``job_id`` if it is over; True when the id is free."""
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return True
        status = job.get_status(refresh=True)
        if status in _ALIVE:
            log.debug("job %s is %s: not queued twice", job_id, status)
            return False
        job.delete()
        return True

    def status(self, job_id: str) -> str | None:
        """The RQ status of job ``job_id`` (``queued``, ``finished``, ...), or None."""
        try:
            job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
        except NoSuchJobError:
            return None
        status = job.get_status(refresh=True)
        return str(status.value) if status is not None else None
