"""The dispatcher: hands each ready agent the best task it may take.

Event-driven: the Lua scripts publish ``task_added <id>`` and ``agent_ready <id>`` on the
pool's channel, and the dispatcher answers each with ``dispatch_task`` or ``dispatch_agent``.
A sweep every ``sweep_interval`` seconds catches whatever a message missed (a dispatcher that
was down, a task that becomes eligible for everyone when its preferred agent's time is up) and
queues the scheduled tasks that are due. Any number of dispatchers may run: the claim script
is the truth, wake-ups are only hints.

A record that cannot be read (a malformed task or agent hash) is set aside in the pool's
quarantine (``store/quarantine.py``, listed by ``acdkit doctor``) and skipped; no error of one
record or one piece of work stops the loop: ``run`` logs it (rate-limited) and starts again
after a backoff.

After a claim, ``on_reserved(agent, task)`` runs in its own asyncio task; if it raises, the
error is logged and the reservation is released (the task keeps its place, the agent goes to
``failed_agent_state``), so nothing stays stuck.

Each claim is one round trip that chooses inside Redis (``store/claims.py``): a new task
takes the agent ready longest that may take it (``claim_for_task``); ready agents get the best
task each may take (``claim_next``), many agents per round trip when many ask at once: agents
that ask while a claim is in flight wait for the next one, which serves them all (``Batches``:
no wait when the center is quiet, fewer round trips when it is busy). A full batch waiting
starts a second claim beside the first, so Redis runs one while this process reads the other's
answer; the sweep asks for every ready agent the same way.

Wake-ups are handled concurrently, up to ``concurrency`` at a time, and the periodic sweep runs
beside them: measured on the lab (tests/bench/bench_calls.py), one message at a time capped
inbound set-ups near 35 calls/s, because each round trip waits a turn of a busy event loop.
Concurrency is safe because the scripts are atomic: two dispatchers never reserve one agent or
one task twice, and neither has to retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from acdkit.core.agents import Agent, AgentEvent, AgentState
from acdkit.core.errors import (
    AcdError,
    InvalidTransition,
    NoSuchTask,
    RedisUnavailable,
)
from acdkit.core.routing import PriorityRules
from acdkit.core.tasks import Task, TaskState
from acdkit.limits import RateLimitedLog
from acdkit.ports import Clock
from acdkit.store.claims import Claimed, Round
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)
say = RateLimitedLog(log)

OnReserved = Callable[[Agent, Task], Awaitable[None]]

_BACKOFF = (0.5, 1.0, 2.0, 5.0)


class Batches:
    """Agents asking for work share claims: the first ask runs at once, and the agents that
    ask while it runs are served together by the next one (up to ``size`` each). While a
    claim is in flight, another starts only for a full batch, up to ``in_flight`` at once:
    Redis runs one while this process reads the answer of the other: 1,000 agents asking at
    once got 61% more claims per second (docs/benchmarks.md, "Two claims in flight")."""

    def __init__(self, claim: Callable[[list[str]], Awaitable[Mapping[str, Task]]],
                 size: int, in_flight: int = 2) -> None:
        if size < 1 or in_flight < 1:
            raise ValueError("a batch holds one agent or more, and one claim or more runs")
        self.claim = claim
        self.size = size
        self.in_flight = in_flight
        self._asking: dict[str, asyncio.Future[Task | None]] = {}
        self._draining: set[asyncio.Task[None]] = set()
        self._closed = False

    async def ask(self, agent_id: str) -> Task | None:
        """The task reserved for ``agent_id`` by the claim that served it, or None (always
        None once closed)."""
        if self._closed:
            return None
        future = self._asking.get(agent_id)
        if future is None:
            future = self._asking[agent_id] = asyncio.get_running_loop().create_future()
        if not self._draining or (len(self._draining) < self.in_flight
                                  and len(self._asking) >= self.size):
            drain = asyncio.create_task(self._drain(), name="dispatch claims")
            self._draining.add(drain)
        return await asyncio.shield(future)

    def close(self) -> set[asyncio.Task[None]]:
        """Start no claim any more; return the ones in flight. They are left to end, not
        cancelled: Redis may have made their reservations already, and a cancelled claim
        would leave them to the stale sweep. Whoever waits for a later claim gets None."""
        self._closed = True
        for future in self._asking.values():
            if not future.done():
                future.set_result(None)
        self._asking.clear()
        return set(self._draining)

    def _more(self) -> bool:
        """Whether a claim that just ended goes on: the last one serves whoever waits, the
        others full batches only."""
        return len(self._asking) >= self.size or (bool(self._asking)
                                                  and len(self._draining) == 1)

    async def _drain(self) -> None:
        futures: list[asyncio.Future[Task | None]] = []
        me = asyncio.current_task()
        try:
            while self._more():
                ids = list(self._asking)[:self.size]
                futures = [self._asking.pop(agent_id) for agent_id in ids]
                try:
                    got = await self.claim(ids)
                except Exception as err:  # each asker sees the error of its claim
                    for future in futures:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for agent_id, future in zip(ids, futures, strict=True):
                    if not future.done():
                        future.set_result(got.get(agent_id))
                futures = []
        finally:
            if me is not None:
                self._draining.discard(me)
            for future in futures:  # cancelled: nobody waits on
                future.cancel()
            if not self._draining:
                for future in self._asking.values():
                    future.cancel()
                self._asking.clear()


class Dispatcher:
    """Match ready agents with queued tasks through the core rules and the claim script.

    ``heads``: tasks read from the head of each of an agent's skill queues per page;
    ``max_scan``: deepest rank read when the heads hold nothing the agent may take;
    ``batch``: most agents served by one ``claim_next`` round trip;
    ``in_flight``: most ``claim_next`` round trips at once (another starts for a full batch);
    ``stale_after``: seconds after which a reservation nobody moved on is released by the
    sweep (a dispatcher that died between claim and connect); ``None`` disables it.
    """

    def __init__(self, pool: Pool, rules: PriorityRules, clock: Clock, on_reserved: OnReserved,
                 *, sweep_interval: float = 5.0, heads: int = 4, max_scan: int = 500,
                 batch: int = 32, failed_agent_state: AgentState = AgentState.PAUSED,
                 stale_after: float | None = 300.0, concurrency: int = 16,
                 in_flight: int = 2, node: str = "") -> None:
        self.pool = pool
        self.node = node  # live callers of other nodes are theirs to claim
        self.rules = rules  # the pool scores tasks with the same rules when they are queued
        self.clock = clock
        self.on_reserved = on_reserved
        self.sweep_interval = sweep_interval
        self.heads = heads
        self.max_scan = max_scan
        self.batch = batch
        self.in_flight = in_flight
        self.failed_agent_state = failed_agent_state
        self.stale_after = stale_after
        self._pending: set[asyncio.Task[None]] = set()
        self._wakeups: list[tuple[float, str]] = []  # (epoch seconds, task id), a heap
        self._waking: set[str] = set()
        self._next_due: float | None = None  # the next scheduled task's due time, if known
        self._failures = 0
        self._slots = asyncio.Semaphore(concurrency)  # wake-ups handled at the same time
        self._handling: set[asyncio.Task[None]] = set()
        self._sweeping: asyncio.Task[None] | None = None
        self._asks = Batches(self._claim_next, batch, in_flight)  # agents asking for work

    # -- the claims ------------------------------------------------------------------------

    async def dispatch_agent(self, agent_id: str) -> Task | None:
        """Reserve the best task ``agent_id`` may take now; return it, or None.

        Agents that ask while a claim is in flight share the next one: a busy center claims
        for many agents per round trip (``claim_next``), an idle one at once."""
        return await self._asks.ask(agent_id)

    async def dispatch_task(self, task_id: str) -> Agent | None:
        """Reserve the longest-ready eligible agent for ``task_id``; return it, or None."""
        made = await self.pool.claim_for_task(task_id, self.clock.now(), node=self.node)
        self._note_preferred(made.wake_at)
        return self._reserved(made)[0].agent if made.claimed else None

    async def _claim_next(self, agent_ids: list[str]) -> dict[str, Task]:
        made = await self.pool.claim_next(agent_ids, self.clock.now(), page=self.heads,
                                          depth=self.max_scan, node=self.node)
        self._note_preferred(made.wake_at)
        return {c.agent.id: c.task for c in self._reserved(made)}

    def _reserved(self, made: Round) -> tuple[Claimed, ...]:
        """Start connecting each reservation made (``on_reserved``, in its own task)."""
        for claimed in made.claimed:
            job = asyncio.create_task(self._connect(claimed.agent, claimed.task),
                                      name=f"connect {claimed.task.id}")
            self._pending.add(job)
            job.add_done_callback(self._pending.discard)
        return made.claimed

    async def _connect(self, agent: Agent, task: Task) -> None:
        try:
            await self.on_reserved(agent, task)
        except Exception:
            log.exception("task %s: connecting agent %s failed; releasing", task.id, agent.id)
            try:
                await self.pool.release(task.id, self.failed_agent_state, self.clock.now(),
                                        reason="connect_failed",
                                        from_states=(TaskState.RESERVED,))
            except AcdError as err:
                log.warning("task %s: not released after a failed connect: %s", task.id, err)

    async def stop(self, timeout: float) -> bool:
        """Cancel the work in flight (wake-ups, the sweep, and the connects ``on_reserved``
        runs: a call's agent ringing), let the claims in flight end (their connects are
        stopped in turn), start no claim any more, and wait up to ``timeout`` s for it all to
        end, clean-up included; True when all ended. serve calls it once the loop stopped, with
        the flows' stop, before it gives its node's lease up (docs/standby.md)."""
        clock = asyncio.get_running_loop().time
        deadline = clock() + timeout
        claims = self._asks.close()  # the claims in flight end by themselves
        asked: set[asyncio.Task[None]] = set()
        # A claim or a wake-up that ends with a reservation starts a connect: stopped too.
        while True:
            running = {work for work in (*self._handling, *self._pending, self._sweeping)
                       if work is not None and not work.done()}
            claiming = {claim for claim in claims if not claim.done()}
            if not running and not claiming:
                return True
            for work in running - asked:
                work.cancel()  # once: a second cancellation would cut its clean-up short
            asked |= running
            left = deadline - clock()
            if left <= 0:
                return False
            await asyncio.wait(running | claiming, timeout=left,
                               return_when=asyncio.FIRST_COMPLETED)

    async def wait_idle(self) -> None:
        """Wait until every wake-up, sweep and ``on_reserved`` started so far has finished."""
        while self._handling or self._pending or (self._sweeping and not self._sweeping.done()):
            running = [*self._handling, *self._pending, *filter(None, [self._sweeping])]
            await asyncio.gather(*running, return_exceptions=True)

    # -- preferred agents: a task that becomes everyone's at preferred_until ------------------

    def _note_preferred(self, wake_at: Mapping[str, float]) -> None:
        for task_id, until in wake_at.items():
            if task_id not in self._waking:
                self._waking.add(task_id)
                heapq.heappush(self._wakeups, (until, task_id))

    def next_wakeup(self) -> float | None:
        """When a task's preferred-agent time is up or a scheduled task is due, if ever."""
        times = [self._wakeups[0][0]] if self._wakeups else []
        times += [] if self._next_due is None else [self._next_due]
        return min(times, default=None)

    async def wake_due(self) -> int:
        """Queue and dispatch the scheduled tasks that are due, and dispatch the tasks whose
        preferred-agent time is up; return how many tasks were tried."""
        now = self.clock.now()
        tried = 0
        if self._next_due is not None and self._next_due <= now:
            for task_id in await self.pool.promote_due(now):
                tried += 1
                await self.dispatch_task(task_id)
            self._next_due = await self.pool.next_due()
        while self._wakeups and self._wakeups[0][0] <= now:
            _, task_id = heapq.heappop(self._wakeups)
            self._waking.discard(task_id)
            tried += 1
            await self.dispatch_task(task_id)
        return tried

    # -- the slow safety pass ------------------------------------------------------------------

    async def sweep(self) -> int:
        """Queue due tasks, release stale reservations, offer work to every ready agent.

        Returns the number of reservations made.
        """
        now = self.clock.now()
        for task_id in await self.pool.promote_due(now):
            log.debug("task %s is due", task_id)
        self._next_due = await self.pool.next_due()
        agents = await self.pool.list_agents()
        if await self._release_stale(agents, now):
            agents = await self.pool.list_agents()
        ready = sorted((a for a in agents if a.state is AgentState.READY),
                       key=lambda a: (a.state_since, a.id))
        waiting = {s.skill for s in await self.pool.stats(
            {skill for a in ready for skill in a.skills}) if s.waiting}
        asking = [a.id for a in ready if waiting.intersection(a.skills)]
        got = await asyncio.gather(*(self.dispatch_agent(agent_id) for agent_id in asking),
                                   return_exceptions=True)
        for outcome in got:  # the claims' error, once (each asker of a claim sees it)
            if isinstance(outcome, BaseException):
                raise outcome
        return sum(isinstance(outcome, Task) for outcome in got)

    async def _release_stale(self, agents: list[Agent], now: float) -> int:
        released = 0
        if self.stale_after is None:
            return released
        for agent in agents:
            if agent.state is AgentState.RESERVED and agent.task_id \
                    and now - agent.state_since > self.stale_after:
                log.warning("agent %s: reservation of task %s is stale; releasing",
                            agent.id, agent.task_id)
                try:
                    await self.pool.release(agent.task_id, AgentState.READY, now,
                                            reason="stale_reservation",
                                            from_states=(TaskState.RESERVED,))
                except (InvalidTransition, NoSuchTask):
                    # The task moved on without its agent: end the agent's side instead.
                    await self._guarded(self.pool.move_agent(
                        agent.id, AgentEvent.END, now, expect_task=agent.task_id))
                released += 1
        return released

    # -- the loop ----------------------------------------------------------------------------

    async def handle(self, message: str) -> None:
        """Act on one wake-up message (``task_added <id>`` or ``agent_ready <id>``)."""
        kind, _, entity = message.partition(" ")
        if kind == "task_added" and entity:
            await self.dispatch_task(entity)
        elif kind == "agent_ready" and entity:
            await self.dispatch_agent(entity)

    async def run(self) -> None:
        """Dispatch on wake-ups and sweep periodically until cancelled; survive Redis outages
        and any error of one piece of work (logged, rate-limited, then a fresh start)."""
        while True:
            try:
                await self._listen()
            except (RedisUnavailable, RedisConnectionError, RedisTimeoutError, OSError) as err:
                say.warning("dispatcher redis", "dispatcher: %s; retrying in %.1f s", err,
                            self._backoff())
                await asyncio.sleep(self._backoff())
                self._failures += 1
            except Exception:
                say.error("dispatcher failed", "dispatcher: failed; starting again in %.1f s",
                          self._backoff(), exc_info=True)
                await asyncio.sleep(self._backoff())
                self._failures += 1

    def _backoff(self) -> float:
        return _BACKOFF[min(self._failures, len(_BACKOFF) - 1)]

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        pubsub = self.pool.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.pool.keys.events)
            await self._quiet(self.sweep())  # whatever happened while we were not listening
            self._failures = 0
            next_sweep = loop.time() + self.sweep_interval
            while True:
                timeout = next_sweep - loop.time()
                wake = self.next_wakeup()
                if wake is not None:
                    timeout = min(timeout, wake - self.clock.now())
                message = await pubsub.get_message(timeout=max(0.0, min(timeout, 1.0)))
                if message is not None and message.get("type") == "message":
                    await self._start(self.handle(str(message["data"])))
                await self._guarded(self.wake_due())
                if loop.time() >= next_sweep:
                    if self._sweeping is None or self._sweeping.done():
                        self._sweeping = asyncio.create_task(self._quiet(self.sweep()),
                                                             name="dispatch sweep")
                    next_sweep = loop.time() + self.sweep_interval
        finally:
            # A close that fails (the pool closing under it as serve stops) must not replace
            # the cancellation with an error that run() takes for an outage and retries.
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _start(self, work: Coroutine[Any, Any, object]) -> None:
        """Handle a wake-up in its own asyncio task once a slot is free (the wait holds back
        reading further messages: Redis keeps them)."""
        await self._slots.acquire()
        job = asyncio.create_task(self._quiet(work), name="dispatch wake-up")
        self._handling.add(job)
        job.add_done_callback(self._handling.discard)
        job.add_done_callback(lambda _: self._slots.release())

    async def _quiet(self, work: Awaitable[object]) -> None:
        """Background dispatch work: a Redis outage is logged here (the listener sees it too
        and reconnects; the sweep after it catches up)."""
        try:
            await self._guarded(work)
        except (RedisUnavailable, RedisConnectionError, RedisTimeoutError, OSError) as err:
            say.warning("dispatcher redis", "dispatcher: %s", err)
        except Exception:
            say.error("dispatcher work failed", "dispatcher: wake-up or sweep failed",
                      exc_info=True)

    async def _guarded(self, work: Awaitable[object]) -> None:
        """Run one piece of dispatch work; a bad record must not stop the dispatcher."""
        try:
            await work
        except RedisUnavailable:
            raise
        except AcdError as err:
            say.warning("dispatcher error", "dispatcher: %s", err)
