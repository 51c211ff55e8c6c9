"""Import a CSV file into the pool: rows in batches, bad rows reported, good rows kept.

Rows are parsed by ``core.importing``; numbers on the do-not-call list in Redis are refused
like those of the configured list; business rules run on each task (``store.outbound``);
tasks are added in pipelined batches and a task id that exists already (the same row
imported before) is skipped, so re-importing a file adds nothing twice.

Memory stays bounded whatever the file (docs/security-policy.md): records are split by
``core.leadfile`` (a row over ``MAX_RECORD`` characters, or a quoted cell that never closes,
is one rejected row and never a source of tasks), rows go in batches, and rejected rows are
streamed to a ``RejectSink`` while the report keeps only the first few.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Protocol, cast

from acdkit.core.errors import BadRow
from acdkit.core.importing import ImportPlan, parse_row, plan_columns
from acdkit.core.leadfile import MAX_RECORD, Record, Splitter
from acdkit.core.rules import Evaluation
from acdkit.core.tasks import Task
from acdkit.store.dnc import dnc_key
from acdkit.store.outbound import judge, record_rules
from acdkit.store.pool import Pool

BATCH = 2_000
KEEP_REJECTS = 20  # rejected rows a report holds; every one goes to the ``RejectSink``


@dataclass(frozen=True)
class Rejected:
    line: int  # the file line the row starts on
    reason: str
    cells: tuple[str, ...] = ()  # the row's cells as read (none when unreadable)


class RejectSink(Protocol):
    """Where every rejected row goes as it is found (the ``--rejects`` file)."""

    def start(self, header: Sequence[str]) -> None: ...

    def add(self, rejected: Rejected) -> None: ...


@dataclass
class ImportReport:
    rows: int = 0
    added: int = 0
    already: int = 0  # imported before (or twice in this file): skipped
    dropped: int = 0  # dropped by a business rule
    rejected: int = 0
    first_rejects: list[Rejected] = field(default_factory=list)  # the first KEEP_REJECTS
    sink: RejectSink | None = None

    def reject(self, rejected: Rejected) -> None:
        self.rejected += 1
        if len(self.first_rejects) < KEEP_REJECTS:
            self.first_rejects.append(rejected)
        if self.sink is not None:
            self.sink.add(rejected)


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


Row = tuple[int, dict[str, str] | None, str, tuple[str, ...]]  # line, row or None, why, cells


def _records(text: IO[str], max_chars: int) -> Iterator[Record]:
    splitter = Splitter(max_chars)
    while chunk := text.readline(max_chars + 1):  # never a whole 1 GB line in memory
        record = splitter.feed(chunk)
        if record is not None:
            yield record
    last = splitter.close()
    if last is not None:
        yield last


def _cells(record: Record) -> tuple[list[str] | None, str]:
    if record.refused:
        return None, record.refused
    try:
        return next(csv.reader((record.text,)), []), ""
    except csv.Error as err:
        return None, f"unreadable CSV: {err}"


def read_rows(text: IO[str], max_chars: int = MAX_RECORD) -> tuple[list[str], Iterator[Row]]:
    """The header of the CSV ``text`` and its rows: (line, row, '', cells), or (line, None,
    why, cells) for a row that cannot be read (oversized, a quoted cell that never closes,
    the wrong number of cells). Blank lines are skipped. Raises ``BadRow`` (line 1) for a
    file whose header cannot be read."""
    records = _records(text, max_chars)
    first = next(records, None)
    header, why = _cells(first) if first is not None else ([], "")
    if header is None:
        raise BadRow(1, why)
    return header, _rows(records, header)


def _rows(records: Iterator[Record], header: list[str]) -> Iterator[Row]:
    for record in records:
        cells, why = _cells(record)
        if cells == []:
            continue
        if cells is not None and len(cells) != len(header):
            why = "wrong number of cells"
        if why:
            yield record.line, None, why, tuple(cells or ())
            continue
        yield record.line, dict(zip(header, cells or (), strict=True)), "", ()


async def import_csv(pool: Pool, binary: IO[bytes], plan: ImportPlan, now: float, *,
                     header_map: Mapping[str, str] | None = None,
                     progress: Callable[[], None] | None = None,
                     rejects: RejectSink | None = None) -> ImportReport:
    """Import the UTF-8 CSV in ``binary`` (a BOM is allowed; the caller closes it) with
    ``plan`` at ``now``; ``progress`` is called after each batch, ``rejects`` gets every
    rejected row as it is found (the report keeps the first ``KEEP_REJECTS``). Raises
    ``BadRow`` (line 1) for a file without a number column or an unreadable header,
    ``ConfigError`` for a bad header map; every other bad row is in the report."""
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="")
    try:
        header, rows = read_rows(text)
        plan = replace(plan, columns=plan_columns(header, header_map))
        report = ImportReport(sink=rejects)
        if rejects is not None:
            rejects.start(header)
        batch: list[tuple[int, dict[str, str]]] = []
        for line, row, why, cells in rows:
            if row is None:  # one bad row, not a bad file: reported, the import goes on
                report.rows += 1
                report.reject(Rejected(line, why, cells))
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
            report.reject(Rejected(line, err.reason, tuple(row.values())))
    if not parsed:
        return
    blocked = await pool.redis.smismember(dnc_key(pool), [t.number for _, _, t in parsed])
    kept: list[tuple[Task, Evaluation]] = []
    seen: set[str] = set()
    for (line, row, task), dnc in zip(parsed, blocked, strict=True):
        if dnc:
            report.reject(Rejected(line, "number: do_not_call", tuple(row.values())))
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
