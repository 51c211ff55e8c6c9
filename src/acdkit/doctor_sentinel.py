"""``acdkit doctor`` on a Redis Sentinel group (docs/redis-ha.md): is failover safe?

With ``redis.sentinels`` set, each sentinel is asked, with a short timeout, where the primary
is; they must agree, reach their quorum (``SENTINEL CKQUORUM``), and see enough replicas
online for ``redis.min_replicas_ack``. Without a wait for replicas, a failover may lose
what the old primary acknowledged: that is a warning too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from acdkit.checks import Check
from acdkit.config import Settings
from acdkit.store.primary import Primary, primary_of

TIMEOUT = 2.0  # seconds per sentinel
_DOWN_FLAGS = frozenset({"s_down", "o_down", "disconnected"})


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {TIMEOUT:g} s"
    return str(exc) or type(exc).__name__


async def _ask(primary: Primary, host: str, port: int) -> dict[str, Any]:
    """What one sentinel says of the primary: its address, quorum and replicas."""
    options: dict[str, Any] = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT,
                               "decode_responses": True}
    if primary.sentinel_username:
        options["username"] = primary.sentinel_username
    if primary.sentinel_password:
        options["password"] = primary.sentinel_password
    client = aioredis.Redis(host=host, port=port, **options)
    name = primary.master_name
    try:
        address = await client.sentinel_get_master_addr_by_name(name, return_responses=True)
        try:  # redis-py's sentinel_ckquorum reads "OK <n> usable Sentinels..." as False
            quorum = str(await client.execute_command(  # type: ignore[no-untyped-call]
                "SENTINEL", "CKQUORUM", name)).split(".")[0]
        except ResponseError as exc:  # NOQUORUM ..., or an unknown master
            quorum = str(exc)
        replicas = await client.sentinel_slaves(name) if address else []
    finally:
        await client.aclose()
    online = sum(1 for r in replicas if not _down(r))
    primary_at = tuple(str(part) for part in address) if isinstance(address, tuple | list) \
        else ()
    return {"primary": primary_at, "quorum": quorum, "online": online}


def _down(replica: dict[str, Any]) -> bool:
    """A replica a sentinel sees as down or disconnected (redis-py parses the flags)."""
    if any(replica.get(key) for key in ("is_sdown", "is_odown", "is_disconnected")):
        return True
    return bool(_DOWN_FLAGS & set(str(replica.get("flags", "")).split(",")))


async def check_sentinels(settings: Settings) -> list[Check]:
    """One check per sentinel, then one for the group; none without ``redis.sentinels``."""
    primary = primary_of(settings.redis)
    if not primary.sentinels:
        return []
    asked = await asyncio.gather(*(asyncio.wait_for(_ask(primary, host, port), TIMEOUT * 4)
                                   for host, port in primary.sentinels),
                                 return_exceptions=True)
    checks, answers = [], []
    for (host, port), got in zip(primary.sentinels, asked, strict=True):
        where = f"sentinel {host}:{port}"
        if isinstance(got, BaseException):
            checks.append(Check(where, "FAIL", f"no answer: {_reason(got)}"))
        elif not got["primary"]:
            checks.append(Check(where, "FAIL",
                                f"does not know the primary {primary.master_name!r}"))
        else:
            answers.append(got)
            checks.append(Check(where, "OK", f"primary at {':'.join(got['primary'])}, "
                                f"{got['online']} replica(s) online; quorum {got['quorum']}"))
    checks.append(_group(settings, primary, answers, len(primary.sentinels)))
    return checks


def _group(settings: Settings, primary: Primary, answers: list[dict[str, Any]],
           listed: int) -> Check:
    what = f"sentinel group {primary.master_name!r}"
    if not answers:
        return Check(what, "FAIL", "no sentinel answered: no failover can happen")
    seen = {a["primary"] for a in answers}
    if len(seen) > 1:
        named = ", ".join(sorted(":".join(p) for p in seen))
        return Check(what, "FAIL", f"the sentinels name different primaries ({named})")
    if not any(a["quorum"].startswith("OK") for a in answers):
        return Check(what, "FAIL", f"no quorum: {answers[0]['quorum']}")
    online = min(a["online"] for a in answers)
    need = settings.redis.min_replicas_ack
    if need and online < need:
        return Check(what, "FAIL", f"{online} replica(s) online, redis.min_replicas_ack "
                     f"needs {need}: bookings and claims are refused")
    if not need:
        return Check(what, "WARN", f"{online} replica(s) online, but redis.min_replicas_ack "
                     "is 0: a failover may lose what the old primary acknowledged")
    spare = "" if len(answers) == listed else f"; {listed - len(answers)} sentinel(s) silent"
    return Check(what, "OK", f"{len(answers)} sentinel(s) agree, quorum OK, {online} "
                 f"replica(s) online for {need} acknowledgement(s){spare}")
