"""Callbacks in Redis: dial attempts, the dial lock and the commands between job and serve.

THE CONTRACT between the ``dial_back`` job (services/dial_back.py, run in an RQ worker) and
``serve`` (the Stasis app, which owns every live call). Agent first: the job never dials anyone.

1. When serve's dispatcher reserves an agent for a callback task it calls
   ``enqueue_dial_back(store, job_queue, task_id)`` (services/callbacks.py): RQ job
   ``acdkit.jobs.dial_back`` (one string argument, the task id) on queue ``callbacks``,
   job id ``dial-<task_id>-<n>`` with ``n = await store.next_attempt_number(task_id)``,
   unique (a job still queued or running is not queued twice).
2. The job takes the dial lock ``acdkit:{pool}:lock:dial:<task_id>`` (SET NX PX with a random
   token, renewed while it waits, deleted only by its holder): never two attempts of one
   callback at once. It checks the dialing policy (calling hours, dial rate per number,
   expiry), then opens attempt ``n`` and, in the same atomic step, RPUSHes to
   ``acdkit:{pool}:commands`` the JSON object::

       {"op": "dial_back", "task_id": "<id>", "attempt": <n>, "agent_id": "<agent id>",
        "number": "<E.164>", "agent_leg": "cb-<id>-<n>-a", "customer_leg": "cb-<id>-<n>-c"}

   ``open_attempt`` is refused when attempt ``n`` exists: the fence that stops a retried job
   from asking twice.
3. serve BLPOPs it (``next_command``) and drops it when ``get_attempt`` shows an outcome
   already (the job gave up waiting) or the task is no longer RESERVED for ``agent_id``
   (cancelled meanwhile; check again before dialing the customer). Otherwise it originates
   the agent leg with the channel id ``agent_leg`` (Asterisk refuses a second channel with
   the same id: a duplicated command cannot ring twice), whispers, originates
   ``customer_leg`` to ``number`` with the center's caller ID, bridges both, and reports
   ``update_attempt(task_id, n, state=...)`` along
   ``requested → ringing_agent → ringing_customer → connected → ended`` (plus ``detail``).
4. serve ends every attempt with ``finish_attempt(task_id, n, outcome, now)`` (a
   ``core.callbacks.DialOutcome``; the first outcome wins, later calls return it). It
   LPUSHes the outcome to ``acdkit:{pool}:attempt-done:<task_id>:<n>`` (expires) and audits
   ``attempt_<outcome>``. Before finishing:
   - answered: serve moves the task CONNECT and the agent ANSWER; at hang-up the task COMPLETE,
     the agent END, and it calls ``forget_callback(task)``;
   - agent_no_answer: serve moves the agent NO_ANSWER (its miss; the task goes back to the
     pool with its place in the same step);
   - no_answer, busy, failed: serve hangs up both legs and moves nothing: the job reschedules
     or fails the task and frees the agent in one step (an agent END first would put the task
     back in the pool for a moment, where another agent could take it).
5. The job waits with ``wait_attempt`` (BLPOP, then a re-read of the hash, so a late waiter
   still sees the outcome), applies ``core.callbacks.after_attempt`` and marks the attempt
   ``decided``. No outcome within 2 x agents.ring_timeout + 30 s: the job finishes the
   attempt as ``failed`` (detail ``timeout``) itself.

Attempt hash ``acdkit:{pool}:attempt:<task_id>:<n>``: task_id, attempt, agent_id, number,
state, outcome ('' until it ends), detail, agent_leg, customer_leg, requested_at, ended_at,
base_attempts (the task's customer attempts when it opened), decided ('' until the job applied
what follows: the ``core.callbacks.Next`` value). ``n`` counts every attempt, those the agent
missed included (they are not customer attempts in ``Task.attempts``), so channel ids never
repeat; ``acdkit:{pool}:attempt-last:<task_id>`` holds the highest ``n`` opened.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from typing import Any, cast

from acdkit.core.callbacks import DialOutcome
from acdkit.core.errors import AcdError, InvalidInput, NotDurable, NotFound
from acdkit.store.base import Conflict
from acdkit.store.booking import Booking, BookResult
from acdkit.store.codec import encode_float
from acdkit.store.connection import guarded
from acdkit.store.pool import Pool

__all__ = ["Attempt", "AttemptState", "BookResult", "CallbackStore", "agent_leg"]

log = logging.getLogger(__name__)

DONE_TTL = 86_400  # seconds an outcome waits in its done list for a waiter
_SLICE = 2.0  # seconds per BLPOP: well under the client's socket timeout


class AttemptState(StrEnum):
    REQUESTED = "requested"
    RINGING_AGENT = "ringing_agent"
    RINGING_CUSTOMER = "ringing_customer"
    CONNECTED = "connected"
    ENDED = "ended"


def agent_leg(task_id: str, n: int, side: str = "a") -> str:
    """The fixed ARI channel id of attempt ``n``: agent leg (``a``) or customer leg (``c``)."""
    return f"cb-{task_id}-{n}-{side}"


@dataclass(frozen=True)
class Attempt:
    task_id: str
    n: int
    agent_id: str
    number: str
    state: AttemptState
    outcome: DialOutcome | None
    detail: str
    agent_leg: str
    customer_leg: str
    requested_at: float
    ended_at: float | None
    base_attempts: int
    decided: str
    node: str = ""  # the node whose serve dialed it ("": one node, or not dialed yet)

    @classmethod
    def parse(cls, raw: Mapping[str, str]) -> Attempt:
        """The attempt stored in ``raw``; raises ``InvalidInput`` when a field is bad."""
        try:
            return cls(raw["task_id"], int(raw["attempt"]), raw["agent_id"], raw["number"],
                       AttemptState(raw["state"]),
                       DialOutcome(raw["outcome"]) if raw["outcome"] else None,
                       raw.get("detail", ""), raw["agent_leg"], raw["customer_leg"],
                       float(raw["requested_at"]),
                       float(raw["ended_at"]) if raw.get("ended_at") else None,
                       int(raw["base_attempts"]), raw.get("decided", ""),
                       raw.get("node", ""))
        except (KeyError, ValueError) as err:
            raise InvalidInput(f"attempt record {dict(raw)!r} is malformed ({err})") from None


_OPEN = """
-- KEYS: attempt hash, last-attempt pointer, command list. ARGV[5..7]: task id, n, command
-- JSON ('' = none); field/value pairs from ARGV[8]. Returns 1, or 0 when it exists.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
if tonumber(ARGV[6]) > (tonumber(redis.call('GET', KEYS[2]) or '0') or 0) then
  redis.call('SET', KEYS[2], ARGV[6])
end
if ARGV[7] ~= '' then redis.call('RPUSH', KEYS[3], ARGV[7]) end
audit('task', ARGV[5], 'attempt_requested', {'attempt', ARGV[6],
  'agent', redis.call('HGET', KEYS[1], 'agent_id')})
return 1
"""
_UPDATE = """
-- KEYS: attempt hash. ARGV[5..6]: task id, n; field/value pairs from ARGV[7].
-- An ended attempt keeps its state. Returns 'ok', 'ended' or 'missing'.
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local o = redis.call('HGET', KEYS[1], 'outcome')
local ended = o and o ~= ''
local state = nil
for i = 7, #ARGV, 2 do
  if ARGV[i] ~= 'state' then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  elseif not ended then
    redis.call('HSET', KEYS[1], 'state', ARGV[i + 1])
    state = ARGV[i + 1]
  end
end
if state then audit('task', ARGV[5], 'attempt_' .. state, {'attempt', ARGV[6]}) end
if ended then return 'ended' end
return 'ok'
"""
_FINISH = """
-- KEYS: attempt hash, done list, dial counter of the number. ARGV[5..10]: task id, n,
-- outcome, detail, done TTL, counter window (0: do not count).
-- Returns {'ok' | 'already' | 'missing', the stored outcome}.
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', ''} end
local got = redis.call('HGET', KEYS[1], 'outcome')
if got and got ~= '' then return {'already', got} end
local outcome = ARGV[7]
redis.call('HSET', KEYS[1], 'state', 'ended', 'outcome', outcome, 'ended_at', NOW,
  'detail', ARGV[8])
redis.call('LPUSH', KEYS[2], outcome)
redis.call('EXPIRE', KEYS[2], ARGV[9])
if tonumber(ARGV[10]) > 0 and outcome ~= 'agent_no_answer' then
  redis.call('INCR', KEYS[3])
  if redis.call('TTL', KEYS[3]) < 0 then redis.call('EXPIRE', KEYS[3], ARGV[10]) end
end
audit('task', ARGV[5], 'attempt_' .. outcome, {'attempt', ARGV[6],
  'agent', redis.call('HGET', KEYS[1], 'agent_id'), 'detail', ARGV[8]})
return {'ok', outcome}
"""
_SERVE_FIELDS = frozenset({"state", "detail", "agent_leg", "customer_leg", "node"})


@functools.cache
def _with_lib(body: str) -> str:
    return files("acdkit.store").joinpath("lua", "_lib.lua").read_text() + "\n" + body


class CallbackStore(Booking):
    """Callbacks of one pool: booking (``Booking``), attempts, the dial lock, commands.

    ``lock_ttl``: seconds the dial lock lives unless renewed; ``number_window``: seconds the
    dial count of a number runs over (``NumberPolicy.number_window``).
    """

    def __init__(self, pool: Pool, *, lock_ttl: float = 30.0,
                 number_window: float = 86_400.0) -> None:
        super().__init__(pool, lock_ttl=lock_ttl)
        self.number_window = number_window
        self._open = self.redis.register_script(_with_lib(_OPEN))
        self._update = self.redis.register_script(_with_lib(_UPDATE))
        self._finish = self.redis.register_script(_with_lib(_FINISH))

    def _argv(self, now: float, *rest: str) -> list[str]:
        audit = self.pool.audit
        return [self.keys.base, str(audit.maxlen), str(audit.entity_maxlen), encode_float(now),
                *rest]

    # -- commands (jobs → serve) -------------------------------------------------------------

    @guarded
    async def push_command(self, cmd: Mapping[str, Any]) -> None:
        """Append ``cmd`` (JSON-able, with an ``op``) to the list; else ``InvalidInput``."""
        await self.redis.rpush(self.keys.commands, _encode_command(cmd))

    @guarded
    async def next_command(self, timeout: float) -> dict[str, Any] | None:
        """The oldest command, waiting up to ``timeout`` seconds for one; None when none came.
        A malformed entry is logged and skipped."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raw = await self.redis.lpop(self.keys.commands)
            else:
                got = await self.redis.blpop([self.keys.commands], timeout=min(left, _SLICE))
                raw = got[1] if got else None
            if raw is not None:
                cmd = _decode_command(cast(str, raw))
                if cmd is not None:
                    return cmd
                continue
            if left <= 0:
                return None

    @guarded
    async def queued_commands(self) -> list[dict[str, Any]]:
        """The commands nobody took yet, oldest first (malformed ones left out)."""
        raw = cast(list[str], await self.redis.lrange(self.keys.commands, 0, -1))
        return [cmd for cmd in map(_decode_command, raw) if cmd is not None]

    # -- attempts ------------------------------------------------------------------------------

    @guarded
    async def open_attempt(self, task_id: str, n: int, agent_id: str, now: float, *,
                           number: str = "", base_attempts: int = 0,
                           command: Mapping[str, Any] | None = None) -> bool:
        """Record attempt ``n`` of ``task_id`` for ``agent_id`` (state requested) and push
        ``command`` in the same atomic step; False (and nothing written) when attempt ``n``
        exists already. Raises ``InvalidInput`` for a bad id, number or command."""
        fields = {"task_id": task_id, "attempt": str(n), "agent_id": agent_id,
                  "number": number, "state": AttemptState.REQUESTED, "outcome": "",
                  "detail": "", "agent_leg": agent_leg(task_id, n),
                  "customer_leg": agent_leg(task_id, n, "c"), "requested_at": encode_float(now),
                  "ended_at": "", "base_attempts": str(base_attempts), "decided": ""}
        encoded = _encode_command(command) if command is not None else ""
        pairs = [item for pair in fields.items() for item in pair]
        return bool(await self._open(
            keys=[self.keys.attempt(task_id, n), self.keys.attempt_last(task_id),
                  self.keys.commands],
            args=self._argv(now, task_id, str(n), encoded, *pairs)))

    @guarded
    async def get_attempt(self, task_id: str, n: int) -> Attempt | None:
        """Attempt ``n`` of ``task_id``, or None."""
        raw = cast(dict[str, str], await self.redis.hgetall(self.keys.attempt(task_id, n)))
        return Attempt.parse(raw) if raw else None

    @guarded
    async def last_attempt_number(self, task_id: str) -> int:
        """The highest attempt number opened for ``task_id`` (0: none)."""
        return int(cast(str | None, await self.redis.get(self.keys.attempt_last(task_id)))
                   or 0)

    async def last_attempt(self, task_id: str) -> Attempt | None:
        """The latest attempt of ``task_id``, or None."""
        return await self.get_attempt(task_id, n) if (
            n := await self.last_attempt_number(task_id)) else None

    async def next_attempt_number(self, task_id: str) -> int:
        """The attempt the next ``dial_back`` job of ``task_id`` works on: the latest one while
        it is not decided, else the one after it (its job id is ``dial-<task_id>-<n>``)."""
        last = await self.last_attempt(task_id)
        return 1 if last is None else last.n + (1 if last.decided else 0)

    @guarded
    async def attempts(self, task_id: str) -> list[Attempt]:
        """Every attempt of ``task_id``, first first."""
        last = await self.last_attempt_number(task_id)
        pipe = self.redis.pipeline(transaction=False)
        for n in range(1, last + 1):
            pipe.hgetall(self.keys.attempt(task_id, n))
        return [Attempt.parse(raw) for raw in await pipe.execute() if raw]

    @guarded
    async def update_attempt(self, task_id: str, n: int, now: float | None = None,
                             **fields: str) -> bool:
        """Set serve's fields of attempt ``n`` (``state``, ``detail``, ``agent_leg``,
        ``customer_leg``); a state change is audited as ``attempt_<state>``. An ended attempt
        keeps state ``ended``: returns False then, else True. Raises ``NotFound`` for a missing
        attempt, ``InvalidInput`` for another field or an unknown state."""
        unknown = set(fields) - _SERVE_FIELDS
        if unknown:
            raise InvalidInput(f"update_attempt cannot set {sorted(unknown)[0]!r}")
        if "state" in fields:
            fields["state"] = AttemptState(fields["state"]).value
        when = self.pool.clock.now() if now is None else now
        pairs = [item for pair in fields.items() for item in pair]
        status = await self._update(keys=[self.keys.attempt(task_id, n)],
                                    args=self._argv(when, task_id, str(n), *pairs))
        if status == "missing":
            raise NotFound(f"no attempt {n} of callback {task_id!r}")
        return bool(status == "ok")

    @guarded
    async def finish_attempt(self, task_id: str, n: int, outcome: DialOutcome, now: float, *,
                             detail: str = "", dialed: bool = True) -> DialOutcome:
        """End attempt ``n`` with ``outcome`` at ``now``, wake its waiter, audit it; the first
        outcome wins: returns the stored one. Counts a dial to the number unless the agent
        missed or not ``dialed``. Raises ``NotFound`` for a missing attempt."""
        key = self.keys.attempt(task_id, n)
        number = (cast(str | None, await self.redis.hget(key, "number")) or "") if dialed else ""
        counter = self.keys.rate("dial", number) if number else key
        status, stored = await self._finish(
            keys=[key, self.keys.attempt_done(task_id, n), counter],
            args=self._argv(now, task_id, str(n), DialOutcome(outcome).value, detail,
                            str(DONE_TTL), str(int(self.number_window) if number else 0)))
        if status == "missing":
            raise NotFound(f"no attempt {n} of callback {task_id!r}")
        return DialOutcome(stored)

    @guarded
    async def wait_attempt(self, task_id: str, n: int, timeout: float) -> DialOutcome | None:
        """The outcome of attempt ``n`` once it has one, waiting up to ``timeout`` seconds;
        None when it has none by then."""
        key, done = self.keys.attempt(task_id, n), self.keys.attempt_done(task_id, n)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            stored = cast(str | None, await self.redis.hget(key, "outcome"))
            if stored:
                return DialOutcome(stored)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await self.redis.blpop([done], timeout=min(left, _SLICE))

    @guarded
    async def mark_decided(self, task_id: str, n: int, decided: str) -> None:
        """Record that the job applied ``decided`` (a ``Next`` value) after attempt ``n``."""
        await self.redis.hset(self.keys.attempt(task_id, n), "decided", decided)

    @guarded
    async def delete_attempts(self, task_id: str) -> int:
        """Delete every attempt record of ``task_id`` (audit entries stay); return how many."""
        last = await self.last_attempt_number(task_id)
        keys = [self.keys.attempt_last(task_id), self.keys.dial_lock(task_id)]
        for n in range(1, last + 1):
            keys += [self.keys.attempt(task_id, n), self.keys.attempt_done(task_id, n)]
        await self.redis.delete(*keys)
        return last

    # -- dialplan mode: tasks held by an Asterisk queue, not by an acdkit agent ---------------

    @guarded
    async def hold_for_queue(self, task_id: str, holder: str, now: float) -> bool:
        """Mark queued ``task_id`` reserved by ``holder`` (``ami:<queue>``, an Asterisk queue
        that ``acdkit agi`` dials into, no acdkit agent) in one compare-and-set; False when
        it is no longer queued. The dispatcher never sees such a reservation."""
        return await self._set_hold(task_id, "queued", "*", holder, "reserve", now)

    @guarded
    async def unhold_for_queue(self, task_id: str, holder: str, now: float) -> bool:
        """Send ``task_id`` reserved by ``holder`` back to its queue with its place (the queue
        member did not answer); False when ``holder`` no longer holds it."""
        return await self._set_hold(task_id, "reserved", holder, "", "release", now)

    async def _set_hold(self, task_id: str, expected: str, expect_holder: str, holder: str,
                        event: str, now: float) -> bool:
        state = "reserved" if holder else "queued"
        try:
            await self.pool._write_task(task_id, expected, expect_holder, event, now,
                                        {"state": state, "agent_id": holder})
        except Conflict:
            return False
        return True

    # -- the dial lock -------------------------------------------------------------------------

    @guarded
    async def acquire_dial_lock(self, task_id: str, ttl: float | None = None) -> str | None:
        """Take the dial lock of ``task_id`` for ``ttl`` s (``lock_ttl``): its token, or None.

        With ``redis.min_replicas_ack`` the token is returned only once replicas hold the
        lock; else the lock is let go and ``NotDurable`` raised: nobody dials on a lock a
        failover could forget (docs/redis-ha.md)."""
        key = self.keys.dial_lock(task_id)
        token = await self._lock(key, ttl or self.lock_ttl)
        if token is not None and self.pool.durability.enabled:
            try:
                await self.pool.durability.confirm()
            except NotDurable:
                with contextlib.suppress(AcdError):  # else it expires after ttl
                    await self._release(key, token)
                raise
        return token

    @guarded
    async def renew_dial_lock(self, task_id: str, token: str, ttl: float | None = None) -> bool:
        """Extend the lock to ``ttl`` seconds from now; False unless ``token`` holds it."""
        return await self._extend(self.keys.dial_lock(task_id), token, ttl or self.lock_ttl)

    @guarded
    async def release_dial_lock(self, task_id: str, token: str) -> bool:
        """Release the lock if ``token`` holds it; return whether it did."""
        return await self._release(self.keys.dial_lock(task_id), token)

    @guarded
    async def dial_lock_held(self, task_id: str) -> bool:
        """True while anyone holds the dial lock of ``task_id``."""
        return bool(await self.redis.exists(self.keys.dial_lock(task_id)))


def _encode_command(cmd: Mapping[str, Any]) -> str:
    if not isinstance(cmd, Mapping) or not isinstance(cmd.get("op"), str):
        raise InvalidInput(f"a command is a mapping with an 'op', not {cmd!r}")
    try:
        return json.dumps(dict(cmd), sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"command {cmd!r} is not JSON: {err}") from None


def _decode_command(raw: str) -> dict[str, Any] | None:
    try:
        cmd = json.loads(raw)
    except ValueError:
        cmd = None
    if not isinstance(cmd, dict) or not isinstance(cmd.get("op"), str):
        log.warning("command list: skipping malformed entry %r", raw[:200])
        return None
    return cmd
