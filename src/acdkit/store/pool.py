"""The pool in Redis: tasks, agents (``store/agents.py``) and the claims that join them
(``store/claims.py``).

One async repository for the dispatcher, the Stasis app, the CLI and the jobs (which call it
through ``asyncio.run``). Decisions are the core's (``tasks.transition``, ``agents.transition``,
``routing.pool_score``); every write goes through a Lua script under a compare-and-set on the
state Python read, so a concurrent change makes the loser re-read and decide again, and ends
in ``InvalidTransition`` (no longer allowed) or ``ClaimLost`` (kept changing under us).
Redis failures raise ``RedisUnavailable``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from redis.exceptions import NoScriptError

from acdkit.core.agents import Agent, AgentEvent
from acdkit.core.errors import (
    AcdError,
    ClaimLost,
    InvalidInput,
    InvalidTransition,
    NoSuchTask,
    NotFound,
)
from acdkit.core.routing import PriorityRules, pool_score
from acdkit.core.tasks import Task, TaskEvent, TaskState
from acdkit.core.tasks import transition as task_transition
from acdkit.store.base import ATTEMPTS, AgentMove, Conflict, TaskMove, copies, flat, own_copy
from acdkit.store.claims import ClaimRepository
from acdkit.store.codec import (
    agent_to_hash,
    changed,
    encode_float,
    task_from_hash,
    task_to_hash,
)
from acdkit.store.connection import connect, guarded
from acdkit.store.durability import Acks
from acdkit.store.primary import Primary


@dataclass(frozen=True)
class SkillStats:
    skill: str
    waiting: int
    oldest_enqueued_at: float | None  # the longest-waiting task's enqueue time
    ready_agents: int


class Pool(ClaimRepository):
    """Tasks and agents of one pool (one ``Keys`` prefix) in one Redis."""

    # -- tasks -----------------------------------------------------------------------------

    def _new_task_hash(self, task: Task) -> dict[str, str]:
        if task.state not in (TaskState.QUEUED, TaskState.SCHEDULED):
            raise InvalidInput(f"task {task.id!r}: a new task is queued or scheduled, "
                               f"not {task.state}")
        if task.state is TaskState.SCHEDULED and task.due_at is None:
            raise InvalidInput(f"task {task.id!r}: a scheduled task needs a due time")
        if task.agent_id:
            raise InvalidInput(f"task {task.id!r}: a new task is held by no agent")
        self.keys.task(task.id)
        self.keys.queue(task.skill)
        return {**task_to_hash(task), "score": encode_float(pool_score(task, self.rules))}

    def _add_args(self, task: Task, now: float | None) -> tuple[list[str], list[str]]:
        pairs = self._new_task_hash(task)
        when = task.created_at if now is None else now
        return [self.keys.task(task.id)], self._argv(when, task.id, "", "*", "add", *flat(pairs))

    @guarded
    async def add_task(self, task: Task, now: float | None = None) -> None:
        """Store a new QUEUED task in its skill queue (or a SCHEDULED one in the due set).

        Dispatchers are woken up. Raises ``InvalidInput`` for a task id that exists already,
        a bad id or skill, or a task in another state.
        """
        keys, args = self._add_args(task, now)
        if await self.scripts.task_state(keys=keys, args=args) == "exists":
            raise InvalidInput(f"task {task.id!r} already exists")

    @guarded
    async def add_tasks(self, tasks: Iterable[Task], now: float | None = None,
                        batch: int = 1_000) -> list[str]:
        """Add many tasks in pipelined batches; return the ids skipped as already existing."""
        skipped: list[str] = []
        todo = list(tasks)
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            pipe = self.redis.pipeline(transaction=False)
            for task in chunk:
                keys, args = self._add_args(task, now)
                await self.scripts.task_state(keys=keys, args=args, client=pipe)
            results = await pipe.execute()
            skipped += [t.id for t, r in zip(chunk, results, strict=True) if r == "exists"]
        return skipped

    async def _task_raw(self, task_id: str) -> dict[str, str]:
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.task(task_id)))
        if not raw:
            raise NoSuchTask(f"no task {task_id!r}")
        return raw

    @guarded
    async def get_task(self, task_id: str) -> Task | None:
        """The task ``task_id``, or None when there is none."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.task(task_id)))
        return task_from_hash(raw) if raw else None

    @guarded
    async def list_tasks(self, limit: int = 1_000, offset: int = 0) -> list[Task]:
        """Tasks, newest first (by creation time), ``limit`` at most from ``offset``."""
        ids = cast(list[str], await self.redis.zrevrange(self.keys.tasks, offset,
                                                          offset + limit - 1))
        return [task for task in await self._load_tasks(ids) if task is not None]

    async def _load_tasks(self, task_ids: Sequence[str]) -> list[Task | None]:
        pipe = self.redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hgetall(self.keys.task(task_id))
        raws = await pipe.execute()
        return [await self._task_or_none(task_id, raw)
                for task_id, raw in zip(task_ids, raws, strict=True)]

    async def _task_or_none(self, task_id: str, raw: dict[str, str]) -> Task | None:
        """The task in ``raw``; None when there is none or it went to the quarantine."""
        if not raw:
            return None
        return await self.quarantine.decoded("task", task_id, raw, task_from_hash,
                                             self.clock.now())

    async def _write_task(self, task_id: str, expected: str, expect_agent: str, event: str,
                          now: float, pairs: dict[str, str]) -> None:
        self._task_written(task_id, await self.scripts.task_state(
            keys=[self.keys.task(task_id)],
            args=self._argv(now, task_id, expected, expect_agent, event, *flat(pairs))))

    @guarded
    async def update_task(self, task_id: str, now: float, **fields: Any) -> Task:
        """Change fields other than ``id``, ``state`` and ``agent_id``; return the new task.

        The pool score is recomputed under the current rules, so a queued task moves in line
        when its priority changes. Raises ``InvalidInput`` for an unknown or forbidden field.
        """
        forbidden = {"id", "state", "agent_id"} & set(fields)
        if forbidden:
            raise InvalidInput(f"update_task cannot set {sorted(forbidden)[0]!r}: "
                               "move_task, claim and release change it")
        for _ in range(ATTEMPTS):
            raw = await self._task_raw(task_id)
            task = task_from_hash(raw)
            try:
                new = replace(task, **fields)
            except TypeError as err:
                raise InvalidInput(f"task {task_id!r}: {err}") from None
            self.keys.queue(new.skill)
            if new.state is TaskState.SCHEDULED and new.due_at is None:
                raise InvalidInput(f"task {task_id!r}: a scheduled task needs a due time")
            after = {**task_to_hash(new), "score": encode_float(pool_score(new, self.rules))}
            try:
                await self._write_task(task_id, task.state, "*", "update", now,
                                       changed(raw, after))
                return new
            except Conflict:
                continue
        raise ClaimLost(f"task {task_id!r} kept changing while being updated")

    @guarded
    async def move_task(self, task_id: str, event: TaskEvent, now: float, *,
                        due_at: float | None = None, outcome: str = "",
                        expect_agent: str | None = None, known: Task | None = None) -> Task:
        """Apply ``event`` (core ``tasks.transition`` rules) to the stored task atomically.

        ``expect_agent`` makes the change conditional on the task still being held by that
        agent (``ClaimLost`` otherwise). ``RESERVE`` and ``RELEASE`` involve an agent: use
        ``claim`` and ``release``. A held task that is rescheduled frees its agent (to wrap-up)
        in the same step. A task that becomes due is scored anew (its place in line is
        ``min(enqueued_at, now)``); every other move keeps its stored score.
        ``known``: the task as the caller just read it, which saves reading it again (one
        round trip instead of two); the script's compare-and-set on the state still decides,
        and a state changed meanwhile sends the move back to a fresh read.
        Raises ``NoSuchTask``, ``InvalidTransition``, ``ClaimLost``.
        """
        if event in (TaskEvent.RESERVE, TaskEvent.RELEASE):
            raise InvalidInput(f"task event {event!r} goes through claim() or release()")
        move = TaskMove(task_id, event, due_at=due_at, outcome=outcome,
                        expect_agent=expect_agent)
        async for raw, task, guessed in copies(task_id, known, self._task_raw, task_to_hash,
                                               task_from_hash):
            try:
                new, keys, args = self._task_write(move, raw, task, now)
            except (ClaimLost, InvalidTransition):
                if guessed:
                    continue  # the caller's copy was out of date: read the task
                raise
            try:
                self._task_written(task_id, await self.scripts.task_state(keys=keys, args=args))
                return new
            except Conflict:
                continue
        raise ClaimLost(f"task {task_id!r} kept changing while taking {event!r}")

    def _task_write(self, move: TaskMove, raw: dict[str, str], task: Task,
                    now: float) -> tuple[Task, list[str], list[str]]:
        """The task after ``move`` from ``task`` (stored as ``raw``) and its script's keys and
        args; raises the core's refusal (``InvalidTransition``, ``ClaimLost``)."""
        if move.expect_agent is not None and task.agent_id != move.expect_agent:
            raise ClaimLost(f"task {task.id!r} is not held by agent {move.expect_agent!r}")
        new = task_transition(task, move.event, now, due_at=move.due_at, outcome=move.outcome)
        after = task_to_hash(new)
        if move.event is TaskEvent.DUE:
            after["score"] = encode_float(pool_score(new, self.rules))
        held_by = "*" if move.expect_agent is None else move.expect_agent
        return new, [self.keys.task(task.id)], self._argv(
            now, task.id, task.state, held_by, move.event, *flat(changed(raw, after)))

    @staticmethod
    def _task_written(task_id: str, status: str) -> None:
        if status == "missing":
            raise NoSuchTask(f"no task {task_id!r}")
        if status != "ok":
            raise Conflict(status)

    @guarded
    async def move_together(self, moves: Sequence[TaskMove | AgentMove], now: float,
                            ) -> list[Task | Agent | AcdError]:
        """Make ``moves`` in order from the copies their callers hold (each ``known``), all in
        one round trip: the moves a call makes at once (its agent answers and its task
        connects; its task ends and its agent goes to wrap-up). Each script still decides by
        its compare-and-set, so the moves are exactly those ``move_task`` and ``move_agent``
        would make. A move whose copy is out of date (its compare-and-set lost, or the core
        refuses the copy) is made again alone from a fresh read once the round trip is back,
        and without any copy (or with one the core refuses) every move is made alone, in
        order. Returns, for each move, the new task or agent, or the error it ended with
        (``NotFound``, ``InvalidTransition``, ``ClaimLost``)."""
        for move in moves:
            if move.event in (TaskEvent.RESERVE, TaskEvent.RELEASE, AgentEvent.RESERVE):
                raise InvalidInput(f"{move.event!r} goes through claim() or release()")
        plans = [self._planned(move, now) for move in moves]
        planned = [plan for plan in plans if plan is not None]
        if len(planned) < len(moves):  # each from its copy, if any, as move_task/move_agent
            return [await self._alone(move, now, move.known) for move in moves]
        # EVALSHA itself: a pipeline of script objects asks SCRIPT EXISTS first, a second
        # round trip. A script Redis lost (a restart, a failover) answers NOSCRIPT and did not
        # run: that move is made alone, which loads it.
        pipe = self.redis.pipeline(transaction=False)
        for move, (_, keys, args) in zip(moves, planned, strict=True):
            script = (self.scripts.task_state if isinstance(move, TaskMove)
                      else self.scripts.agent_state)
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        statuses = await pipe.execute(raise_on_error=False)
        for status in statuses:
            if isinstance(status, Exception) and not isinstance(status, NoScriptError):
                raise status
        done: list[Task | Agent | AcdError] = []
        for move, plan, status in zip(moves, planned, statuses, strict=True):
            done.append(plan[0] if status == "ok" else await self._alone(move, now, None))
        return done

    def _planned(self, move: TaskMove | AgentMove, now: float,
                 ) -> tuple[Task | Agent, list[str], list[str]] | None:
        """The write of ``move`` from its caller's copy; None when there is none, or the core
        refuses it (then a fresh read decides)."""
        try:
            if isinstance(move, TaskMove):
                task = own_copy(move.known, move.task_id)
                return None if task is None else self._task_write(move, task_to_hash(task),
                                                                  task, now)
            agent = own_copy(move.known, move.agent_id)
            return None if agent is None else self._agent_write(move, agent_to_hash(agent),
                                                                agent, now)
        except (ClaimLost, InvalidTransition):
            return None

    async def _alone(self, move: TaskMove | AgentMove, now: float,
                     known: Task | Agent | None) -> Task | Agent | AcdError:
        """``move`` made as ``move_task`` or ``move_agent`` makes it, from ``known`` (then a
        fresh read when that copy is refused) or from a fresh read."""
        try:
            if isinstance(move, TaskMove):
                return await self.move_task(move.task_id, move.event, now, due_at=move.due_at,
                                            outcome=move.outcome, expect_agent=move.expect_agent,
                                            known=cast(Task | None, known))
            return await self.move_agent(move.agent_id, move.event, now,
                                         expect_task=move.expect_task,
                                         max_misses=move.max_misses, reason=move.reason,
                                         known=cast(Agent | None, known))
        except (NotFound, InvalidTransition, ClaimLost) as err:
            return err

    @guarded
    async def candidates(self, skills: Iterable[str], limit: int,
                         offset: int = 0) -> list[tuple[float, Task]]:
        """Up to ``limit`` queued tasks from each skill queue, from rank ``offset``: (score, task).

        Lower scores are served first. One round trip (a read-only script).
        """
        names = sorted(skills)
        for skill in names:
            self.keys.queue(skill)
        reply = await self.scripts.peek(
            keys=[self.keys.tasks], args=self._argv(0.0, str(limit), str(offset), *names))
        page = [(float(score), await self._task_or_none(task_id, raw))
                for task_id, score, raw in json.loads(reply)]
        return [(score, task) for score, task in page
                if task is not None and task.state is TaskState.QUEUED]

    @guarded
    async def promote_due(self, now: float, limit: int = 1_000) -> list[str]:
        """Queue the scheduled tasks due at ``now`` (each atomically); return their ids."""
        due = cast(list[str], await self.redis.zrangebyscore(
            self.keys.due, "-inf", encode_float(now), start=0, num=limit))
        promoted: list[str] = []
        for task_id in due:
            try:
                await self.move_task(task_id, TaskEvent.DUE, now)
            except (InvalidTransition, ClaimLost):
                continue  # another process promoted it (or it changed) meanwhile
            except NoSuchTask:
                await self.quarantine.unindexed(task_id)  # a hash deleted by hand
                continue
            except InvalidInput as err:  # a hash that cannot be read: set it aside
                await self.quarantine.add("task", task_id, str(err), now)
                continue
            promoted.append(task_id)
        return promoted

    @guarded
    async def next_due(self) -> float | None:
        """The due time of the next scheduled task, if any."""
        head = cast(list[tuple[str, float]],
                    await self.redis.zrange(self.keys.due, 0, 0, withscores=True))
        return float(head[0][1]) if head else None

    @guarded
    async def queue_position(self, task_id: str) -> int | None:
        """How many tasks are ahead of a queued task in its skill's line (the skill queue
        and the tasks held for their preferred agent, by score; 0: it is next); None when the
        task is not queued (or does not exist). One round trip (a read-only script)."""
        place = await self.scripts.position(keys=[self.keys.task(task_id)],
                                            args=self._argv(0.0, task_id))
        return int(place) - 1 if place else None

    @guarded
    async def stats(self, skills: Iterable[str] | None = None) -> list[SkillStats]:
        """Per skill: tasks waiting, the oldest one's enqueue time, ready agents."""
        names = sorted(skills if skills is not None
                       else cast(set[str], await self.redis.smembers(self.keys.skills)))
        pipe = self.redis.pipeline(transaction=False)
        for skill in names:
            for line in self.keys.lines(skill):
                pipe.zcard(line)
            pipe.zrange(self.keys.queue_age(skill), 0, 0, withscores=True)
            pipe.scard(self.keys.ready(skill))
        got = await pipe.execute()
        return [SkillStats(skill, int(queued) + int(held),
                           float(oldest[0][1]) if oldest else None, int(ready))
                for skill, queued, held, oldest, ready
                in zip(names, got[0::4], got[1::4], got[2::4], got[3::4], strict=True)]

    @guarded
    async def waiting_by_kind(self) -> dict[tuple[str, str, str], int]:
        """How many tasks wait, by (skill, kind, state): ``queued`` (in line, those held for
        their preferred agent included) and ``scheduled``. One read of the counts the scripts
        keep (lua/_lib.lua ``count_waiting``); counted again from the indexes when they are
        not known (lua/counts.lua: a pool written before them, a task set aside)."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.counts))
        if "built" not in raw:
            reply = await self.scripts.counts(keys=[self.keys.counts],
                                              args=self._argv(self.clock.now()))
            raw = dict(zip(reply[0::2], reply[1::2], strict=True))
        counts: dict[tuple[str, str, str], int] = {}
        for field, value in raw.items():
            state, _, rest = field.partition("|")
            skill, _, kind = rest.partition("|")
            if rest and int(value) > 0:
                counts[(skill, kind, state)] = int(value)
        return counts


async def open_pool(target: str | Primary, rules: PriorityRules, *, prefix: str,
                    acks: Acks | None = None) -> Pool:
    """The pool on the Redis at ``target`` (a URL, or the primary its sentinels name), with
    replicas confirming its claims and bookings when ``acks`` asks for them
    (``RedisUnavailable`` when it does not answer)."""
    return Pool(await connect(target), rules, prefix=prefix, acks=acks)
