"""Fakes for acdkit's tests and for users' tests: fake the transport, not the world.

``FakeCallRunner`` stands in for ``serve``'s side of the dial-back contract
(store/callbacks.py): it takes the commands from the real Redis command list and ends each
attempt with the next scripted outcome, moving the task and the agent as serve does. It runs
as an asyncio task (``await runner.run(stop)``) or in a thread of its own (``with runner:``),
so a test can run RQ's ``SimpleWorker`` in the main thread meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from acdkit.core.agents import AgentEvent
from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import AcdError
from acdkit.core.routing import PriorityRules
from acdkit.core.tasks import TaskEvent, TaskState
from acdkit.ports import Clock, SystemClock
from acdkit.store.callbacks import AttemptState, CallbackStore
from acdkit.store.connection import connect
from acdkit.store.pool import Pool


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    t: float = 1_800_000_000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeJobQueue:
    """``ports.JobQueue`` that records what was enqueued; a job id is queued once."""

    jobs: list[tuple[str, str, tuple[str, ...], str, float | None]] = field(default_factory=list)

    def enqueue(self, queue: str, func: str, *args: str, job_id: str | None = None,
                at: float | None = None) -> str:
        job_id = job_id or f"job-{len(self.jobs) + 1}"
        if all(j[3] != job_id for j in self.jobs):
            self.jobs.append((queue, func, args, job_id, at))
        return job_id

    def requeue(self, queue: str, func: str, *args: str, job_id: str, stale_after: float,
                at: float | None = None) -> bool:
        """As ``RqJobQueue.requeue``: a fake job never runs, so a recovery round finds it as
        one of a dead worker and enqueues it again (True; the id is recorded once)."""
        self.enqueue(queue, func, *args, job_id=job_id, at=at)
        return True


class FakeCallRunner:
    """A fake serve for ``dial_back`` jobs, against a real Redis at ``redis_url``.

    ``outcomes`` are used one per command, in order; ``None`` takes the command and never
    ends the attempt (a serve that died mid-call); when they run out, ``default`` is used.
    ``hang_up``: an answered callback is completed (and its agent wrapped up) at once;
    ``delay``: seconds each call takes before its outcome.
    ``commands`` lists every command taken, ``dropped`` those ignored as serve would (the
    attempt had an outcome, or the task was no longer reserved for the agent).
    """

    def __init__(self, redis_url: str, outcomes: Iterable[DialOutcome | None] = (), *,
                 default: DialOutcome | None = None, prefix: str = "acdkit",
                 clock: Clock | None = None, hang_up: bool = True, delay: float = 0.0) -> None:
        self.redis_url = redis_url
        self.outcomes = list(outcomes)
        self.default = default
        self.prefix = prefix
        self.clock = clock or SystemClock()
        self.hang_up = hang_up
        self.delay = delay
        self.commands: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()

    # -- as an asyncio task ------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve commands until ``stop`` is set (or, without one, until cancelled)."""
        pool = Pool(await connect(self.redis_url), PriorityRules(), prefix=self.prefix,
                    clock=self.clock)
        store = CallbackStore(pool)
        self._ready.set()
        try:
            while not self._stop.is_set() and not (stop and stop.is_set()):
                cmd = await store.next_command(0.1)
                if cmd is not None:
                    try:
                        await self.serve(store, cmd)
                    except AcdError as err:  # recorded for the test to see, never swallowed
                        self.errors.append(err)
        finally:
            await pool.close()

    async def serve(self, store: CallbackStore, cmd: dict[str, Any]) -> None:
        """Act on one command as serve does (store/callbacks.py, steps 3 and 4)."""
        task_id, n, agent_id = str(cmd["task_id"]), int(cmd["attempt"]), str(cmd["agent_id"])
        pool = store.pool
        attempt = await store.get_attempt(task_id, n)
        task = await pool.get_task(task_id)
        if attempt is None or attempt.outcome is not None or task is None \
                or task.state is not TaskState.RESERVED or task.agent_id != agent_id:
            self.dropped.append(cmd)
            return
        self.commands.append(cmd)
        outcome = self.outcomes.pop(0) if self.outcomes else self.default
        await store.update_attempt(task_id, n, self.clock.now(), state=AttemptState.RINGING_AGENT)
        if outcome is None:
            return
        await asyncio.sleep(self.delay)
        now = self.clock.now()
        if outcome is DialOutcome.AGENT_NO_ANSWER:
            await pool.move_agent(agent_id, AgentEvent.NO_ANSWER, now, expect_task=task_id)
        else:
            await store.update_attempt(task_id, n, now, state=AttemptState.RINGING_CUSTOMER)
        if outcome is DialOutcome.ANSWERED:
            await store.update_attempt(task_id, n, now, state=AttemptState.CONNECTED)
            await pool.move_task(task_id, TaskEvent.CONNECT, now)
            await pool.move_agent(agent_id, AgentEvent.ANSWER, now, expect_task=task_id)
        await store.finish_attempt(task_id, n, outcome, now)
        if outcome is DialOutcome.ANSWERED and self.hang_up:
            done = await pool.move_task(task_id, TaskEvent.COMPLETE, now, outcome="answered")
            await pool.move_agent(agent_id, AgentEvent.END, now, expect_task=task_id)
            await store.forget_callback(done)

    # -- in a thread of its own --------------------------------------------------------------

    def start(self) -> FakeCallRunner:
        """Run in a background thread with its own event loop; return once it listens."""
        self._stop.clear()
        self._thread = threading.Thread(target=lambda: asyncio.run(self.run()),
                                        name="fake-serve", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("FakeCallRunner did not connect to Redis")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> FakeCallRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def finish_later(redis_url: str, task_id: str, n: int, outcome: DialOutcome,
                       delay: float, prefix: str = "acdkit") -> None:
    """After ``delay`` seconds, end attempt ``n`` with ``outcome`` as a late serve would."""
    await asyncio.sleep(delay)
    pool = Pool(await connect(redis_url), PriorityRules(), prefix=prefix)
    try:
        await CallbackStore(pool).finish_attempt(task_id, n, outcome, SystemClock().now())
    finally:
        await pool.close()
