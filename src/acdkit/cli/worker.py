"""``acdkit worker``: an RQ worker on the callbacks, requests and speech queues.

It runs RQ's scheduler (``enqueue_at`` and ``Retry`` need it), runs RQ's maintenance every
30 s and checks a running job every 10 s, so a job of a SIGKILLed worker is noticed in about
a minute and a half instead of ten (DESIGN §7). A maintenance thread queues the due callbacks
and re-enqueues the callbacks a dead worker left (``jobs.recover_callbacks``) every second.
SIGTERM or SIGINT: RQ finishes the running job and stops, then the thread stops.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import click
import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from acdkit.cli.common import handle_errors, settings_of
from acdkit.config import Settings
from acdkit.core.errors import AcdError, RedisUnavailable
from acdkit.jobqueue import QUEUES, RqJobQueue
from acdkit.jobs import callback_store, promote_due_callbacks, recover_callbacks
from acdkit.policies import retry_policy
from acdkit.ports import SystemClock
from acdkit.store.connection import redact, unavailable
from acdkit.store.requests import RequestStore
from acdkit.voice_jobs import recover_deliveries

log = logging.getLogger(__name__)

MAINTENANCE_INTERVAL = 30  # RQ: seconds between registry clean-ups (default 600)
JOB_MONITORING_INTERVAL = 10  # RQ: seconds between checks of the running job (default 30)
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

        url = redact(self.settings.redis.url)
        retry = retry_policy(self.settings)
        jobs = RqJobQueue(self.settings.redis.url)
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


@click.command()
@click.option("--burst", is_flag=True, help="stop once the queues are empty")
@click.option("--name", help="worker name (default: RQ's)")
@click.pass_context
@handle_errors
def worker(ctx: click.Context, burst: bool, name: str | None) -> None:
    """Run the jobs: dial-backs, transcriptions, speech (queues callbacks, requests, speech)."""
    settings = settings_of(ctx)
    logging.getLogger().setLevel(min(logging.getLogger().level, logging.INFO))
    connection = redis.Redis.from_url(settings.redis.url)
    try:
        connection.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as err:
        raise unavailable(err, settings.redis.url) from err
    log.info("worker: connected to Redis at %s", redact(settings.redis.url))
    queues = [Queue(q, connection=connection, serializer=JSONSerializer) for q in QUEUES]
    # SimpleWorker runs each job in this process: a forked work horse could inherit a lock
    # held by the maintenance thread (logging, Redis) and hang, and a fork per job would add
    # its cost to every dial-back. A SIGKILL still loses only the running job, which
    # `recover` re-enqueues.
    rq_worker = SimpleWorker(queues, name=name, connection=connection, serializer=JSONSerializer,
                       maintenance_interval=MAINTENANCE_INTERVAL,
                       job_monitoring_interval=JOB_MONITORING_INTERVAL)
    keeper = Maintenance(settings)
    keeper.start()
    try:
        rq_worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        keeper.stop()
        connection.close()
        log.info("worker: stopped")
