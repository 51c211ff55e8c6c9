"""Import a CSV file into the pool: rows in batches, bad rows reported, good rows kept.

Rows are parsed by ``core.importing``; numbers on the do-not-call list in Redis are refused
like those of the configured list; business rules run on each task (``store.outbound``);
tasks are added in pipelined batches and a task id that exists already (the same row
imported before) is skipped, so re-importing a file adds nothing twice.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, cast

from acdkit.core.errors import BadRow
from acdkit.core.importing import ImportPlan, parse_row, plan_columns
from acdkit.core.rules import Evaluation
from acdkit.core.tasks import Task
from acdkit.store.dnc import dnc_key
from acdkit.store.outbound import judge, record_rules
from acdkit.store.pool import Pool

BATCH = 2_000


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    row: Mapping[str, str]


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    already: int = 0  # imported before (or twice in this file): skipped
    dropped: int = 0  # dropped by a business rule
    rejected: list[Rejected] = field(default_factory=list)


class CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read through it (for a progress bar)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        got = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += got or 0
        return cast(int, got)


def _read(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str] | None, str]]:
    """(line, row, '') per row, or (line, None, why) for a row the CSV reader refused (a
    cell over its size limit, a NUL); the reader goes on with the next line."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield reader.line_num, None, f"unreadable CSV: {err}"
            continue
        yield reader.line_num, row, ""


def _rows(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) pairs; raises ``BadRow`` at the first row the CSV reader refuses."""
    for line, row, why in _read(reader):
        if row is None:
            raise BadRow(line, why)
        yield line, row


async def import_csv(pool: Pool, binary: IO[bytes], plan: ImportPlan, now: float, *,
                     header_map: Mapping[str, str] | None = None,
                     progress: Callable[[], None] | None = None) -> ImportReport:
    """Import the UTF-8 CSV in ``binary`` (a BOM is allowed; the caller closes it) with
    ``plan`` at ``now``; ``progress`` is called after each batch. Raises ``BadRow`` (line 1)
    for a file without a number column, ``ConfigError`` for a bad header map; every other
    bad row is in the report."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
    try:
        reader = csv.DictReader(text)
        try:
            header = list(reader.fieldnames or [])
        except csv.Error as err:  # e.g. a header cell over csv.field_size_limit (tests/fuzz)
            raise BadRow(1, f"unreadable CSV: {err}") from None
        plan = replace(plan, columns=plan_columns(header, header_map))
        report = ImportReport()
        batch: list[tuple[int, dict[str, str]]] = []
        for line, row, why in _read(reader):
            if row is None:  # one bad row, not a bad file: reported, the import goes on
                report.rows += 1
                report.rejected.append(Rejected(line, why, {}))
                continue
            batch.append((line, row))
            if len(batch) >= BATCH:
                await _batch(pool, batch, plan, now, report)
                batch = []
                if progress:
                    progress()
        await _batch(pool, batch, plan, now, report)
        return report
    finally:
        text.detach()  # leave the binary file open: it is the caller's


async def _batch(pool: Pool, rows: list[tuple[int, dict[str, str]]], plan: ImportPlan,
                 now: float, report: ImportReport) -> None:
    report.rows += len(rows)
    parsed: list[tuple[int, dict[str, str], Task]] = []
    for line, row in rows:
        try:
            parsed.append((line, row, parse_row(line, row, plan, now)))
        except BadRow as err:
            report.rejected.append(Rejected(line, err.reason, row))
    if not parsed:
        return
    blocked = await pool.redis.smismember(dnc_key(pool), [t.number for _, _, t in parsed])
    kept: list[tuple[Task, Evaluation]] = []
    seen: set[str] = set()
    for (line, row, task), dnc in zip(parsed, blocked, strict=True):
        if dnc:
            report.rejected.append(Rejected(line, "number: do_not_call", row))
        elif task.id in seen:
            report.already += 1
        else:
            seen.add(task.id)
            result = judge(pool, task, now)
            if result.dropped:
                report.dropped += 1
            else:
                kept.append((task, result))
    skipped = set(await pool.add_tasks([r.task for _, r in kept], now))
    report.already += len(skipped)
    report.added += len(kept) - len(skipped)
    await record_rules(pool, [(t, r) for t, r in kept if t.id not in skipped and r.fired], now)
