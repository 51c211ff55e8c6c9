"""The ``dial_back`` job seen from outside it: its queue, its name, its ids, how it is queued.

``serve`` queues it when the dispatcher reserves an agent for a callback or an outbound task;
the recovery round queues it again for a callback nobody works on (services/maintenance.py).
The protocol between the job and ``serve`` is in store/callbacks.py.
"""

from __future__ import annotations

from acdkit.config import Settings
from acdkit.core.tasks import TaskKind
from acdkit.policies import number_policy
from acdkit.ports import JobQueue
from acdkit.store.callbacks import CallbackStore
from acdkit.store.pool import Pool

QUEUE = "callbacks"
DIAL_BACK = "acdkit.jobs.dial_back"  # the dotted path jobqueue.JOB_FUNCTIONS accepts
DIALED_BACK = frozenset({TaskKind.CALLBACK, TaskKind.OUTBOUND})  # agent first, by this job


def job_id(task_id: str, n: int) -> str:
    """The RQ job id of the ``dial_back`` that works on attempt ``n`` of ``task_id``."""
    return f"dial-{task_id}-{n}"


def callback_store(pool: Pool, settings: Settings) -> CallbackStore:
    """The callback store of ``pool`` configured from ``settings``."""
    return CallbackStore(pool, lock_ttl=settings.callbacks.lock_ttl,
                         number_window=number_policy(settings).number_window)


async def enqueue_dial_back(store: CallbackStore, jobs: JobQueue, task_id: str) -> str:
    """Enqueue the ``dial_back`` job for ``task_id``'s next attempt; return its job id (a job
    already queued or running for that attempt is not queued twice)."""
    n = await store.next_attempt_number(task_id)
    return jobs.enqueue(QUEUE, DIAL_BACK, task_id, job_id=job_id(task_id, n))
