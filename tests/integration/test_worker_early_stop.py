"""`acdkit worker` stops on a SIGTERM that arrives while RQ is still starting: RQ registers the
worker and starts its scheduler before it installs its own signal handlers, so the stop is
caught by the supervisor and must still end RQ's loop (it used to run on until a second
signal)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import redis

pytestmark = pytest.mark.integration

# RQ's work loop in a main thread of its own (it installs signal handlers), with the stop
# already asked for, as the supervisor's handler records an early SIGTERM.
SCRIPT = textwrap.dedent("""
    import sys, threading
    import redis
    from rq import Queue
    from acdkit.cli.worker import AcdWorker
    from acdkit.jobqueue import QUEUES, JSONSerializer
    connection = redis.Redis.from_url(sys.argv[1])
    queues = [Queue(q, connection=connection, serializer=JSONSerializer) for q in QUEUES]
    worker = AcdWorker(queues, connection=connection, serializer=JSONSerializer)
    worker.stopping = threading.Event()
    worker.stopping.set()
    worker.work(with_scheduler=True)
""")


def test_a_stop_asked_before_rq_handles_signals_ends_the_worker(redis_url: str) -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, redis_url], capture_output=True,
                          text=True, timeout=60)  # before the fix: blocked in dequeue
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stopping on request" in done.stdout + done.stderr
    assert not redis.Redis.from_url(redis_url).scard("rq:workers")  # deregistered
