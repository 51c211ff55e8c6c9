"""``acdkit worker``: an RQ worker on the callbacks, requests and speech queues.

It runs RQ's scheduler (``enqueue_at`` and ``Retry`` need it), runs RQ's maintenance every
30 s and checks a running job every 10 s (docs/architecture.md §7). RQ itself gives up on a
SIGKILLed ``SimpleWorker``'s job only when its heartbeat (job timeout + 60 s) expires, so a
maintenance thread does it for acdkit's jobs: every second it queues the due callbacks and
re-enqueues the callbacks and reply deliveries a dead worker left (``recover_callbacks`` in
services/maintenance.py, ``recover_deliveries``), replacing a job RQ still calls
``started`` once its dial lock is free (``RqJobQueue.requeue``). SIGTERM or SIGINT: RQ
finishes the running job and stops, then the thread stops.

It runs only acdkit's own job functions (``jobqueue.AcdJob``): a job naming anything else,
written into Redis by someone else, fails without being imported or run.

Redis down, at start or later (a restart under a running job makes RQ's failure handling
raise and its work loop quit): the command waits for Redis with a backoff (logged when it
starts waiting and when Redis is back), then runs a new RQ worker; the job that was running
is recovered by the maintenance thread as any job of a dead worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from types import FrameType

import click
import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from acdkit.cli.common import TEXT, handle_errors, settings_of
from acdkit.config import Settings
from acdkit.core.errors import AcdError, RedisUnavailable
from acdkit.jobqueue import QUEUES, AcdJob, RqJobQueue
from acdkit.policies import retry_policy
from acdkit.ports import SystemClock
from acdkit.services.callbacks import callback_store
from acdkit.services.maintenance import promote_due_callbacks, recover_callbacks
from acdkit.services.voice_requests import recover_deliveries
from acdkit.store.connection import CONNECT_TIMEOUT
from acdkit.store.primary import Primary, as_primary, primary_of, sync_client
from acdkit.store.requests import RequestStore

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 30  # RQ: seconds between registry clean-ups (default 600)
JOB_MONITORING_INTERVAL = 10  # RQ: seconds between checks of the running job (default 30)
RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between tries to reach Redis: doubling, capped
SCHEDULER_GRACE = 5.0  # seconds RQ's scheduler process gets to stop before it is killed
PUBSUB_GRACE = 2.0  # seconds RQ's command listener thread gets to stop before it is left
_REDIS_DOWN = (RedisUnavailable, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class Maintenance(threading.Thread):
    """Every ``interval`` seconds: queue due callbacks, recover orphaned ones. Logs when it
    connects to Redis and when it loses it (once per outage)."""

    def __init__(self, settings: Settings, interval: float = 1.0) -> None:
        super().__init__(name="acdkit-maintenance", daemon=True)
        self.settings = settings
        self.interval = interval
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._loop())

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.join(timeout)

    async def _loop(self) -> None:
        from acdkit.bootstrap import open_pool

        url = primary_of(self.settings.redis).where
        retry = retry_policy(self.settings)
        jobs = RqJobQueue(primary_of(self.settings.redis))
        pool = None
        down = False
        try:
            while not self.stopping.is_set():
                try:
                    if pool is None:
                        pool = await open_pool(self.settings)
                        store = callback_store(pool, self.settings)
                        log.info("maintenance: connected to Redis at %s", url)
                        down = False
                    await promote_due_callbacks(store, retry, SystemClock().now())
                    for job in await recover_callbacks(store, jobs):
                        log.info("maintenance: re-enqueued %s", job)
                    for job in await recover_deliveries(
                            RequestStore(pool, self.settings.requests), store, jobs):
                        log.info("maintenance: re-enqueued %s", job)
                except _REDIS_DOWN as err:
                    if not down:
                        log.warning("maintenance: disconnected from Redis at %s: %s", url, err)
                    down = True
                    if pool is not None:
                        await pool.close()
                        pool = None
                except AcdError as err:
                    log.warning("maintenance: %s", err)
                await asyncio.to_thread(self.stopping.wait, self.interval)
        finally:
            if pool is not None:
                await pool.close()
            jobs.close()


class AcdWorker(SimpleWorker):
    """RQ's ``SimpleWorker`` that remembers a stop request (SIGTERM, SIGINT, ``rq shutdown``)
    in ``stopping``, which outlives it: the command re-creates the worker after an outage."""

    stopping: threading.Event

    def handle_warm_shutdown_request(self) -> None:
        self.stopping.set()
        self.log.info("Worker %s: warm shut down requested", self.name)

    def stop_scheduler(self) -> None:
        """RQ's, with a bound. RQ forks its scheduler before it installs its own signal
        handlers, so a scheduler process that gets SIGTERM before its own handlers are in
        place runs the supervisor's, which only flags a stop: it never ends, and RQ's
        unbounded join() would hold this worker forever. After ``SCHEDULER_GRACE`` seconds
        it is killed."""
        process = self.scheduler._process if self.scheduler is not None else None
        if process is None or not process.pid:
            return
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(SCHEDULER_GRACE)
        if process.is_alive():
            self.log.warning("Worker %s: the scheduler did not stop in %.0f s: killed",
                             self.name, SCHEDULER_GRACE)
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGKILL)
            process.join()

    def unsubscribe(self) -> None:
        """RQ's, with a bound. RQ sends UNSUBSCRIBE and only then asks its listener thread to
        stop, joining it without a bound (redis-py 8). When the thread reads the reply first,
        it is no longer subscribed and waits up to a minute for a subscription that never
        comes, and the worker's stop waits with it. Here the thread is told to stop first,
        and it gets ``PUBSUB_GRACE`` seconds; it is a daemon and cannot hold the process."""
        thread, pubsub = self.pubsub_thread, self.pubsub
        if thread is None or pubsub is None:
            return
        self.log.info("Worker %s: unsubscribing from channel %s", self.name,
                      self.pubsub_channel_name)
        thread.stop(timeout=0)  # the flag only: the thread ends after its current read
        with contextlib.suppress(*_REDIS_DOWN):
            pubsub.unsubscribe()  # ends that read
        thread.join(PUBSUB_GRACE)
        if thread.is_alive():
            self.log.warning("Worker %s: the command listener did not stop in %.0f s: left "
                             "to end with the process", self.name, PUBSUB_GRACE)
        with contextlib.suppress(*_REDIS_DOWN):
            pubsub.close()

    def check_for_suspension(self, burst: bool) -> None:
        """Also honour a stop asked for before RQ installed its signal handlers (they come
        after its registration and scheduler start; the supervisor caught the signal)."""
        if self.stopping.is_set():
            self._stop_requested = True
        super().check_for_suspension(burst)


class Supervisor:
    """Runs RQ workers one after the other until a stop is asked for (or a burst is done),
    waiting for Redis whenever it is away."""

    def __init__(self, url: str | Primary, name: str | None, burst: bool) -> None:
        self.url = as_primary(url)  # a URL, or the primary the sentinels name
        self.name = name
        self.burst = burst
        self.stopping = threading.Event()
        self.previous: AcdWorker | None = None  # the last RQ worker, if it did not say it died

    def run(self) -> None:
        delay = RETRY_FIRST
        while True:
            self._catch_stop_signals()
            connection = sync_client(self.url, connect_timeout=CONNECT_TIMEOUT)
            try:
                done = self._wait_for_redis(connection) and self._work(connection)
            finally:
                connection.close()
            if done or self.stopping.is_set():
                return
            log.warning("worker: the RQ worker stopped; starting a new one in %.1f s", delay)
            self.stopping.wait(delay)
            delay = min(2 * delay, RETRY_MAX)

    def _work(self, connection: redis.Redis) -> bool:
        """Run one RQ worker on ``connection``; True when it ended as asked (burst over)."""
        if self.previous is not None:
            try:
                _bury(self.previous)
            except _REDIS_DOWN:
                return False
            self.previous = None
        queues = [Queue(q, connection=connection, serializer=JSONSerializer, job_class=AcdJob)
                  for q in QUEUES]
        # SimpleWorker runs each job in this process: a forked work horse could inherit a
        # lock held by the maintenance thread (logging, Redis) and hang, and a fork per job
        # would add its cost to every dial-back. A SIGKILL still loses only the running job,
        # which the maintenance thread re-enqueues.
        rq_worker = AcdWorker(queues, name=self.name, connection=connection,
                              serializer=JSONSerializer, job_class=AcdJob,
                              maintenance_interval=MAINTENANCE_INTERVAL,
                              job_monitoring_interval=JOB_MONITORING_INTERVAL)
        rq_worker.stopping = self.stopping
        try:
            rq_worker.work(burst=self.burst, with_scheduler=True, logging_level="INFO")
        except _REDIS_DOWN as err:  # RQ's work loop quit and could not clean up
            log.warning("worker: lost Redis at %s: %s", self.url.where, err)
            self.previous = rq_worker
            return False
        finally:
            self._catch_stop_signals()  # RQ's handlers need Redis and this worker
        return self.burst or self.stopping.is_set()

    def _wait_for_redis(self, connection: redis.Redis) -> bool:
        """Wait until Redis answers (True) or a stop is asked for (False), retrying with a
        backoff; logs when it starts waiting and when Redis is back."""
        url, delay, since = self.url.where, RETRY_FIRST, time.monotonic()
        err = _ping(connection)
        if err is not None:
            log.warning("worker: Redis at %s is unavailable (%s): waiting for it (retrying "
                        "every %.1f to %.0f s)", url, err, RETRY_FIRST, RETRY_MAX)
        while err is not None:
            if self.stopping.wait(delay):
                return False
            delay = min(2 * delay, RETRY_MAX)
            err = _ping(connection)
        waited = f" after waiting {time.monotonic() - since:.1f} s" if delay > RETRY_FIRST else ""
        log.info("worker: connected to Redis at %s%s", url, waited)
        return True

    def _catch_stop_signals(self) -> None:
        """While no RQ worker runs (it installs its own handlers), SIGTERM and SIGINT stop."""
        def stop(signum: int, frame: FrameType | None) -> None:
            log.info("worker: signal %d while no RQ worker runs: stopping", signum)
            self.stopping.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, stop)


def _bury(rq_worker: AcdWorker) -> None:
    """Do what an RQ worker that lost Redis could not: register its death and free its
    scheduler's locks (RQ's own expire after a minute), so the next worker's scheduler starts
    at once."""
    rq_worker.register_death()  # type: ignore[no-untyped-call]
    if rq_worker.scheduler is not None:
        rq_worker.stop_scheduler()  # done, unless never begun
        rq_worker.scheduler.release_locks()  # type: ignore[no-untyped-call]


def _ping(connection: redis.Redis) -> BaseException | None:
    """None when Redis answers a PING, else the error."""
    try:
        connection.ping()
    except _REDIS_DOWN as err:
        return err
    return None


@click.command()
@click.option("--burst", is_flag=True, help="stop once the queues are empty")
@click.option("--name", type=TEXT, help="worker name (default: RQ's)")
@click.pass_context
@handle_errors
def worker(ctx: click.Context, burst: bool, name: str | None) -> None:
    """Run the jobs: dial-backs, transcriptions, speech (queues callbacks, requests, speech)."""
    settings = settings_of(ctx)
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    keeper = Maintenance(settings)
    keeper.start()
    try:
        Supervisor(primary_of(settings.redis), name, burst).run()
    finally:
        keeper.stop()
        log.info("worker: stopped")
