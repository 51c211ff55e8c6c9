"""A lead list for import tests and the import benchmark: unique valid US numbers, and one
bad row in every ``bad_every`` (a rotation of the ways a row can be wrong)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

AREAS = (212, 310, 415, 617, 312, 202, 305, 713, 206, 404)
HEADER = ("number", "name", "skill", "priority", "due", "segment", "crm_id")
# (column, bad value, the reason the import gives)
BAD = (
    ("number", "12345", "number: short_code"),
    ("number", "+1 900 555 0142", "number: premium_rate"),
    ("number", "call me", "number: bad_characters"),
    ("number", "", "number: empty"),
    ("number", "911", "number: emergency"),
    ("priority", "urgent", "priority 'urgent' is not an integer"),
    ("skill", "no such skill!", "skill 'no such skill!' is not a queue name"),
    ("due", "next week", "due time 'next week' is neither ISO 8601 nor epoch seconds"),
)


def number_of(i: int) -> str:
    """A valid US number, different for every ``i`` below 800,000."""
    return f"+1{AREAS[i % 10]}{200 + (i // 10) % 800:03d}{i // 8000:04d}"


def write_leads(path: Path, rows: int, bad_every: int = 100) -> dict[int, str]:
    """Write ``rows`` rows to ``path``; return {file line: expected reason} of the bad ones."""
    bad: dict[int, str] = {}
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        for i in range(rows):
            row = {"number": number_of(i), "name": f"Lead {i}",
                   "skill": "sales" if i % 3 else "support", "priority": str(i % 50),
                   "due": "", "segment": "vip" if i % 20 == 0 else "std", "crm_id": f"c{i}"}
            if i % bad_every == bad_every - 1:
                column, value, reason = BAD[(i // bad_every) % len(BAD)]
                row[column] = value
                bad[i + 2] = reason  # line 1 is the header
            writer.writerow([row[c] for c in HEADER])
    return bad


class Collected:
    """A ``store.imports.RejectSink`` that keeps every rejected row (for tests)."""

    def __init__(self) -> None:
        self.header: list[str] = []
        self.rows: list[Any] = []

    def start(self, header: Sequence[str]) -> None:
        self.header = list(header)

    def add(self, rejected: Any) -> None:
        self.rows.append(rejected)
