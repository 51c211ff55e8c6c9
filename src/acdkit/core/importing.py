"""Import rows (CSV) into outbound tasks: column mapping, row validation, stable keys.

Pure: the caller reads the file and passes each row as a mapping of header → text, with its
line number, the time and the number policy. A good row becomes a ``Task``; a bad one raises
``BadRow`` naming the line and the reason, and the import goes on with the next.

Columns (names in the file, changed with a header map): ``number`` (required), ``name``,
``skill``, ``priority`` (an integer), ``due`` (ISO 8601, a naive time in the center's zone, or
epoch seconds), ``key`` (a stable id of the row); every other non-empty column is a free
attribute. The task id is ``imp-`` and a hash of the row's key: the ``key`` column when the
file has one, else the source, the number and the skill. So re-importing a file adds nothing
twice, and the same number in the same queue from the same source is one lead.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from zoneinfo import ZoneInfo

from acdkit.core.errors import BadRow, ConfigError, NumberRejected
from acdkit.core.numbers import NumberPolicy, normalize
from acdkit.core.tasks import Task, TaskKind, TaskState

FIELDS = ("number", "name", "skill", "priority", "due", "key")
_SKILL = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_TEXT = 200
MAX_PRIORITY = 1_000
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Columns:
    """Which file column holds each field (None: the file has none)."""

    by_field: Mapping[str, str | None]
    attributes: tuple[str, ...]  # the other columns, kept as free attributes

    def get(self, row: Mapping[str, str], name: str) -> str:
        column = self.by_field.get(name)
        return (row.get(column) or "").strip() if column else ""


def plan_columns(header: Sequence[str], header_map: Mapping[str, str] | None = None) -> Columns:
    """Match the file's ``header`` with the fields; ``header_map`` maps field → column name.

    Raises ``ConfigError`` (``import.map``) for an unknown field in the map and ``BadRow``
    (line 1) when the number column is missing or a column name repeats.
    """
    names = [h.strip() for h in header]
    if len(set(names)) != len(names):
        raise BadRow(1, "a column name appears twice in the header")
    mapping = dict(header_map or {})
    unknown = set(mapping) - set(FIELDS)
    if unknown:
        raise ConfigError("import.map", f"unknown field {sorted(unknown)[0]!r}; "
                          f"fields are {', '.join(FIELDS)}")
    lower = {n.lower(): n for n in names}
    by_field: dict[str, str | None] = {}
    for name in FIELDS:
        wanted = mapping.get(name, name)
        by_field[name] = wanted if wanted in names else lower.get(wanted.lower())
    if by_field["number"] is None:
        raise BadRow(1, f"no column {mapping.get('number', 'number')!r} for the number")
    used = {c for c in by_field.values() if c}
    return Columns(MappingProxyType(by_field), tuple(n for n in names if n not in used))


@dataclass(frozen=True)
class ImportPlan:
    """How rows become tasks: the source name, the default skill, the dialing policy."""

    source: str
    default_skill: str
    policy: NumberPolicy
    timezone: str = "UTC"  # the zone of due times written without one
    columns: Columns = field(default_factory=lambda: Columns(_EMPTY, ()))


def row_key(source: str, number: str, skill: str, explicit: str = "") -> str:
    """The stable task id of a row: ``imp-`` and 24 hex digits of a hash."""
    material = f"key\x00{source}\x00{explicit}" if explicit else \
        f"row\x00{source}\x00{number}\x00{skill}"
    return "imp-" + hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def parse_row(line: int, row: Mapping[str, str | None], plan: ImportPlan, now: float) -> Task:
    """The outbound task of ``row`` (file line ``line``) imported at ``now``.

    Raises ``BadRow`` with the reason: the number refused by the policy (``number: <reason>``),
    a bad skill, priority, due time or text, a row with too many or too few cells.
    """
    if None in row or any(v is None for v in row.values()):
        raise BadRow(line, "wrong number of cells")
    cells = {k: v for k, v in row.items() if k is not None and v is not None}
    cols = plan.columns
    try:
        number = normalize(cols.get(cells, "number"), plan.policy)
    except NumberRejected as exc:
        raise BadRow(line, f"number: {exc.reason}") from None
    skill = cols.get(cells, "skill") or plan.default_skill
    if not _SKILL.fullmatch(skill):
        raise BadRow(line, f"skill {skill[:40]!r} is not a queue name")
    due_at = _due(line, cols.get(cells, "due"), plan.timezone)
    attributes = {c: _text(line, c, cells.get(c, "")) for c in cols.attributes
                  if (cells.get(c) or "").strip()}
    scheduled = due_at is not None and due_at > now
    return Task(id=row_key(plan.source, number, skill, _text(line, "key", cols.get(cells, "key"))),
                kind=TaskKind.OUTBOUND, skill=skill, created_at=now, enqueued_at=now,
                state=TaskState.SCHEDULED if scheduled else TaskState.QUEUED,
                priority=_priority(line, cols.get(cells, "priority")), number=number,
                name=_text(line, "name", cols.get(cells, "name")), source=plan.source,
                due_at=due_at if scheduled else None,
                attributes=MappingProxyType(attributes))


def _text(line: int, what: str, value: str) -> str:
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise BadRow(line, f"{what} is longer than {MAX_TEXT} characters")
    if _CONTROL.search(value):
        raise BadRow(line, f"{what} holds control characters")
    return value


def _priority(line: int, raw: str) -> int:
    if not raw:
        return 0
    try:
        value = int(raw)
    except ValueError:
        raise BadRow(line, f"priority {raw[:20]!r} is not an integer") from None
    if abs(value) > MAX_PRIORITY:
        raise BadRow(line, f"priority {value} is outside -{MAX_PRIORITY}..{MAX_PRIORITY}")
    return value


def _due(line: int, raw: str, timezone: str) -> float | None:
    if not raw:
        return None
    try:
        due = float(raw) if raw.replace(".", "", 1).isdigit() else _iso(raw, timezone)
    except ValueError:
        raise BadRow(line, f"due time {raw[:40]!r} is neither ISO 8601 nor epoch seconds") \
            from None
    if not math.isfinite(due):  # 400 nines are "inf": a task due never (found by tests/fuzz)
        raise BadRow(line, f"due time {raw[:40]!r} is out of range")
    return due


def _iso(raw: str, timezone: str) -> float:
    when = datetime.fromisoformat(raw)
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    return when.timestamp()
