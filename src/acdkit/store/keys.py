"""Redis key names of the pool.

Every key one Lua script touches shares one hash tag, ``{pool}``, so a claim stays atomic even
on Redis Cluster (docs/architecture.md §6)::

    acdkit:{pool}:task:<id>            hash   one task (codec fields + ``score``)
    acdkit:{pool}:agent:<id>           hash   one agent
    acdkit:{pool}:tasks                zset   every task id, score = created_at (listing)
    acdkit:{pool}:agents               set    every agent id
    acdkit:{pool}:skills               set    every skill that ever had a queue
    acdkit:{pool}:q:<skill>            zset   queued task ids, score = routing.pool_score
    acdkit:{pool}:qheld:<skill>        zset   queued ids waiting for their preferred agent, held
                                              out of q:<skill> until then (score as there)
    acdkit:{pool}:held:<agent>         zset   the same tasks, in their preferred agent's line
    acdkit:{pool}:heldend              zset   the same tasks, score = preferred_until
    acdkit:{pool}:qage:<skill>         zset   queued ids (held too), score = enqueued_at (stats)
    acdkit:{pool}:due                  zset   scheduled task ids, score = due_at
    acdkit:{pool}:ready:<skill>        set    ready agents having that skill
    acdkit:{pool}:kpi                  stream every state change, one JSON field ``e`` (MAXLEN ~)
    acdkit:{pool}:audit:task:<id>      stream the story of one task, the same entries (MAXLEN ~)
    acdkit:{pool}:audit:agent:<id>     stream the story of one agent, the same entries (MAXLEN ~)
    acdkit:{pool}:events               pub/sub wake-ups: ``task_added <id>``, ``agent_ready <id>``
    acdkit:{pool}:changes              pub/sub every audited change: ``<kind> <id> <event>``
    acdkit:{pool}:commands             list   JSON commands from jobs to serve (store/callbacks.py)
    acdkit:{pool}:attempt:<id>:<n>     hash   dial-back attempt n of callback <id>
    acdkit:{pool}:attempt-done:<id>:<n> list  the attempt's outcome for a waiter (expires)
    acdkit:{pool}:attempt-last:<id>    string the highest attempt number opened for <id>
    acdkit:{pool}:lock:<kind>:<id>     string a lock (``dial`` per task, ``book`` per number)
    acdkit:{pool}:cb:number:<e164>     set    pending callback ids for one number
    acdkit:{pool}:rate:<kind>:<who>    string a rate-limit counter (expires with its window)
    acdkit:{pool}:fence                string written before WAIT (store/durability.py)
    acdkit:{pool}:lease:<node>:<app>   string the token of the node's active serve (store/lease.py)
    acdkit:{pool}:lease:<node>:<app>:epoch    string the lease's acquisition counter
    acdkit:{pool}:lease:<node>:<app>:standby  zset standby serves, score = listed until (ms)

The Lua scripts build some names themselves from ``base`` (they learn an agent's skills or a
task's holder only inside the script); the names here and in ``lua/_lib.lua`` must agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from acdkit.core.errors import InvalidInput

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PREFIX = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_NUMBER = re.compile(r"^\+[1-9][0-9]{1,14}$")


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it may go into a key name; raise ``InvalidInput`` naming ``what``."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(f"{what} {value!r} must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return value


def check_number(value: str, what: str = "number") -> str:
    """Return ``value`` if it is E.164 (``+`` and 2-15 digits); raise ``InvalidInput``."""
    if not isinstance(value, str) or not _NUMBER.fullmatch(value):
        raise InvalidInput(f"{what} {value!r} is not an E.164 number")
    return value


def _attempt_no(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput(f"attempt number {n!r} must be an integer of 1 or more")
    return n


@dataclass(frozen=True)
class Keys:
    """Key names under ``prefix`` (``redis.prefix`` in the settings) and one hash tag."""

    prefix: str = "acdkit"
    tag: str = "pool"

    def __post_init__(self) -> None:
        for what, value in (("redis prefix", self.prefix), ("pool tag", self.tag)):
            if not _PREFIX.fullmatch(value):
                raise InvalidInput(f"{what} {value!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")

    @property
    def base(self) -> str:
        """The common start of every key, ``acdkit:{pool}:``; the Lua scripts get it as ARGV."""
        return f"{self.prefix}:{{{self.tag}}}:"

    def task(self, task_id: str) -> str:
        return f"{self.base}task:{check_id(task_id, 'task id')}"

    def agent(self, agent_id: str) -> str:
        return f"{self.base}agent:{check_id(agent_id, 'agent id')}"

    def queue(self, skill: str) -> str:
        return f"{self.base}q:{check_id(skill, 'skill')}"

    def queue_age(self, skill: str) -> str:
        return f"{self.base}qage:{check_id(skill, 'skill')}"

    def queue_held(self, skill: str) -> str:
        return f"{self.base}qheld:{check_id(skill, 'skill')}"

    def lines(self, skill: str) -> tuple[str, str]:
        """Where the skill's queued tasks stand: its queue and its held line."""
        return self.queue(skill), self.queue_held(skill)

    def held_for(self, agent_id: str) -> str:
        return f"{self.base}held:{check_id(agent_id, 'agent id')}"

    @property
    def counts(self) -> str:
        """The waiting tasks counted by state, skill and kind (lua/_lib.lua ``count_waiting``)."""
        return f"{self.base}counts"

    @property
    def held_end(self) -> str:
        return f"{self.base}heldend"

    def ready(self, skill: str) -> str:
        return f"{self.base}ready:{check_id(skill, 'skill')}"

    def audit_of(self, kind: str, entity_id: str) -> str:
        if kind not in ("task", "agent"):
            raise InvalidInput(f"audit kind {kind!r} is neither task nor agent")
        return f"{self.base}audit:{kind}:{check_id(entity_id, f'{kind} id')}"

    @property
    def due(self) -> str:
        return f"{self.base}due"

    @property
    def fence(self) -> str:
        return f"{self.base}fence"

    @property
    def tasks(self) -> str:
        return f"{self.base}tasks"

    @property
    def agents(self) -> str:
        return f"{self.base}agents"

    @property
    def skills(self) -> str:
        return f"{self.base}skills"

    @property
    def kpi(self) -> str:
        """The pool's audit trail, in order: the KPIs are read from it (store/kpis.py)."""
        return f"{self.base}kpi"

    @property
    def events(self) -> str:
        return f"{self.base}events"

    @property
    def changes(self) -> str:
        return f"{self.base}changes"

    # -- callbacks (store/callbacks.py) ------------------------------------------------------

    @property
    def commands(self) -> str:
        return f"{self.base}commands"

    def attempt(self, task_id: str, n: int) -> str:
        return f"{self.base}attempt:{check_id(task_id, 'task id')}:{_attempt_no(n)}"

    def attempt_done(self, task_id: str, n: int) -> str:
        return f"{self.base}attempt-done:{check_id(task_id, 'task id')}:{_attempt_no(n)}"

    def attempt_last(self, task_id: str) -> str:
        return f"{self.base}attempt-last:{check_id(task_id, 'task id')}"

    def dial_lock(self, task_id: str) -> str:
        return f"{self.base}lock:dial:{check_id(task_id, 'task id')}"

    def book_lock(self, e164: str) -> str:
        return f"{self.base}lock:book:{check_number(e164)}"

    def callbacks_of(self, e164: str) -> str:
        return f"{self.base}cb:number:{check_number(e164)}"

    def lease(self, node: str, app: str) -> str:
        """A node's serve lease; ``:epoch`` and ``:standby`` after it name its companions."""
        return f"{self.base}lease:{check_id(node, 'node id')}:{check_id(app, 'ARI app')}"

    def rate(self, kind: str, who: str) -> str:
        """A rate counter: ``who`` is an E.164 number or an id-safe token (a hash)."""
        subject = who if _NUMBER.fullmatch(who) else check_id(who, "rate subject")
        return f"{self.base}rate:{check_id(kind, 'rate kind')}:{subject}"
