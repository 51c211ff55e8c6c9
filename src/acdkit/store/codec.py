"""Task and Agent values ↔ Redis hash fields (all strings), total and strict.

Every dataclass field has a codec entry (an import-time check proves it); ``None`` is stored as
the empty string; mappings are JSON objects. Decoding refuses a missing field, an unknown
field, an unknown enum value or a malformed number with ``InvalidInput`` naming the field.
The store keeps a few fields of its own next to the codec's (``STORE_FIELDS``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from acdkit.core.agents import Agent, AgentMode, AgentState
from acdkit.core.errors import InvalidInput
from acdkit.core.tasks import Task, TaskKind, TaskState

Encode = Callable[[Any], str]
Decode = Callable[[str], Any]

# Fields the store writes next to the codec's: the task's pool score (kept across releases).
STORE_FIELDS = frozenset({"score"})


def encode_float(value: float) -> str:
    """``repr`` round-trips a float exactly through Redis (which parses it with strtod)."""
    return repr(float(value))


def _float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _opt_float(raw: str) -> float | None:
    return None if raw == "" else _float(raw)


def _int(raw: str) -> int:
    if not raw.lstrip("-").isdigit():
        raise ValueError("not an integer")
    return int(raw)


def _opt_str(raw: str) -> str | None:
    return raw or None


def _enum(cls: type[StrEnum]) -> Decode:
    members = {member.value: member for member in cls}  # a dict lookup: ~10x faster than cls()

    def decode(raw: str) -> StrEnum:
        member = members.get(raw)
        return cls(raw) if member is None else member  # cls() raises ValueError

    return decode


_EMPTY: Mapping[str, Any] = MappingProxyType({})  # most attributes and requirements are none


def _mapping(value_type: type) -> Decode:
    def decode(raw: str) -> Mapping[str, Any]:
        if raw == "{}":
            return _EMPTY
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        for key, value in data.items():
            # bool is an int in Python: refuse it explicitly where levels are expected.
            if not isinstance(value, value_type) or isinstance(value, bool):
                raise ValueError(f"{key!r} is not a {value_type.__name__}")
        return MappingProxyType(data)

    return decode


def _encode_mapping(value: Mapping[str, Any]) -> str:
    if not value:
        return "{}"  # most attributes and requirements are none: no JSON to build
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))


def _encode_opt(value: Any) -> str:
    return "" if value is None else str(value)


def _encode_opt_float(value: float | None) -> str:
    return "" if value is None else encode_float(value)


_TEXT: tuple[Encode, Decode] = (str, str)
_OPT_TEXT: tuple[Encode, Decode] = (_encode_opt, _opt_str)
_FLOAT: tuple[Encode, Decode] = (encode_float, _float)
_OPT_FLOAT: tuple[Encode, Decode] = (_encode_opt_float, _opt_float)
_INT: tuple[Encode, Decode] = (str, _int)

TASK_CODEC: Mapping[str, tuple[Encode, Decode]] = MappingProxyType({
    "id": _TEXT, "kind": (str, _enum(TaskKind)), "skill": _TEXT, "created_at": _FLOAT,
    "enqueued_at": _FLOAT, "state": (str, _enum(TaskState)), "priority": _INT,
    "number": _TEXT, "name": _TEXT, "source": _TEXT, "due_at": _OPT_FLOAT,
    "preferred_agent": _OPT_TEXT, "preferred_until": _OPT_FLOAT, "min_level": _INT,
    "required": (_encode_mapping, _mapping(str)), "attributes": (_encode_mapping, _mapping(str)),
    "attempts": _INT, "agent_id": _OPT_TEXT, "channel_id": _OPT_TEXT,
    "customer_rating": _OPT_FLOAT, "outcome": _TEXT, "node": _TEXT,
})
# Fields newer than some stored records: a record written before has their default.
_SINCE_ADDED = MappingProxyType({"node": ""})

AGENT_CODEC: Mapping[str, tuple[Encode, Decode]] = MappingProxyType({
    "id": _TEXT, "name": _TEXT, "pin_hash": _TEXT,
    "skills": (_encode_mapping, _mapping(int)), "attributes": (_encode_mapping, _mapping(str)),
    "reach": _TEXT, "mode": (str, _enum(AgentMode)), "state": (str, _enum(AgentState)),
    "state_since": _FLOAT, "task_id": _OPT_TEXT, "misses": _INT, "pause_reason": _TEXT,
})

# What ``save_agent`` writes: who the agent is, never where it stands.
AGENT_PROFILE = ("name", "pin_hash", "skills", "attributes", "reach", "mode")

for _cls, _codec in ((Task, TASK_CODEC), (Agent, AGENT_CODEC)):
    if {f.name for f in fields(_cls)} != set(_codec):  # pragma: no cover - a developer error
        raise RuntimeError(f"codec of {_cls.__name__} does not cover exactly its fields")


def _encode(value: object, codec: Mapping[str, tuple[Encode, Decode]]) -> dict[str, str]:
    return {name: enc(getattr(value, name)) for name, enc in _ENCODERS[id(codec)]}


def _decode(kind: str, raw: Mapping[str, str],
            codec: Mapping[str, tuple[Encode, Decode]]) -> dict[str, Any]:
    """Every field of ``raw`` (a ``kind`` record) decoded; ``InvalidInput`` naming the first
    bad one."""
    allowed = _ALLOWED[id(codec)]
    if raw.keys() <= allowed:
        try:  # the common case: every field there and well formed, no error to name
            return {name: dec(raw[name]) for name, dec in _DECODERS[id(codec)]}
        except (KeyError, ValueError, TypeError):
            pass
    return _decode_naming(kind, raw, codec)


def _decode_naming(kind: str, raw: Mapping[str, str],
                   codec: Mapping[str, tuple[Encode, Decode]]) -> dict[str, Any]:
    """``_decode`` field by field, to name what is wrong (or to fill in a newer field)."""
    what = f"{kind} {raw.get('id', '?')!r}"
    unknown = set(raw) - set(codec) - STORE_FIELDS
    if unknown:
        raise InvalidInput(f"{what}: unknown field {sorted(unknown)[0]!r}")
    values: dict[str, Any] = {}
    for name, (_, dec) in codec.items():
        if name not in raw and name in _SINCE_ADDED:
            values[name] = dec(_SINCE_ADDED[name])
            continue
        if name not in raw:
            raise InvalidInput(f"{what}: field {name!r} is missing")
        try:
            values[name] = dec(raw[name])
        except (ValueError, TypeError) as err:
            raise InvalidInput(f"{what}: field {name!r} is malformed ({err})") from None
    return values


# Per codec: the fields a record may have, and each field's decoder (looked up once).
_ALLOWED = {id(c): frozenset(c) | STORE_FIELDS for c in (TASK_CODEC, AGENT_CODEC)}
_DECODERS = {id(c): tuple((name, dec) for name, (_, dec) in c.items())
             for c in (TASK_CODEC, AGENT_CODEC)}
_ENCODERS = {id(c): tuple((name, enc) for name, (enc, _) in c.items())
             for c in (TASK_CODEC, AGENT_CODEC)}


def task_to_hash(task: Task) -> dict[str, str]:
    """Every field of ``task`` as a string."""
    return _encode(task, TASK_CODEC)


def task_from_hash(raw: Mapping[str, str]) -> Task:
    """The task stored in ``raw``; raise ``InvalidInput`` naming the first bad field."""
    return Task(**_decode("task", raw, TASK_CODEC))


def agent_to_hash(agent: Agent) -> dict[str, str]:
    """Every field of ``agent`` as a string."""
    return _encode(agent, AGENT_CODEC)


def agent_from_hash(raw: Mapping[str, str]) -> Agent:
    """The agent stored in ``raw``; raise ``InvalidInput`` naming the first bad field."""
    return Agent(**_decode("agent", raw, AGENT_CODEC))


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    """The fields of ``after`` whose encoded value differs from ``before``."""
    return {k: v for k, v in after.items() if before.get(k) != v}
