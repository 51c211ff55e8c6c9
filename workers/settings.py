"""Settings for the stock RQ command, read from acdkit's own (``ACDKIT_*``, acdkit.toml)::

    rq worker -c workers.settings -S json --with-scheduler \
        --job-class acdkit.jobqueue.AcdJob \
        --maintenance-interval 30 --job-monitoring-interval 10

``--job-class acdkit.jobqueue.AcdJob`` is not optional: without it RQ runs any function a job
in Redis names (docs/security-policy.md).

``rq worker`` reads ``REDIS_URL`` and ``QUEUES`` from this module but takes the serializer only
from ``-S``: acdkit's jobs are JSON (a pickle worker cannot load them). Due callbacks and
orphaned dial-backs are handled by ``acdkit worker``'s maintenance thread, or by enqueueing
``acdkit.jobs.promote_due`` and ``acdkit.jobs.recover`` periodically (e.g. from cron).
A stock ``rq worker`` quits when Redis goes away (``acdkit worker`` waits for it): run it
under a supervisor that restarts it.
"""

from acdkit.config import load_settings
from acdkit.jobqueue import QUEUES as _QUEUES

REDIS_URL = load_settings().redis.url
QUEUES = list(_QUEUES)
