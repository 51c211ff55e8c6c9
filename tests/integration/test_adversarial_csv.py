"""Hostile lead files through the real importer and a real Redis: free text never becomes a
task, an oversized or broken cell is one rejected row with its reason, every row after it is
reported (kept or rejected), rejected rows are streamed rather than held, and the
``--rejects`` file cannot carry a spreadsheet formula. docs/security-policy.md."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from leadsfile import Collected
from poolkit import T0

from acdkit.cli import main
from acdkit.core.importing import ImportPlan
from acdkit.core.leadfile import MAX_RECORD
from acdkit.core.numbers import NumberPolicy
from acdkit.store.imports import KEEP_REJECTS, import_csv, read_rows
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration

PLAN = ImportPlan(source="csv:hostile.csv", default_skill="sales", policy=NumberPolicy())
SMUGGLED = "\r\n+12125550199,smuggled\r\n"  # what free text in a cell may look like


async def _import(pool: Pool, data: bytes) -> tuple[object, Collected, set[str]]:
    sink = Collected()
    report = await import_csv(pool, io.BytesIO(data), PLAN, T0, rejects=sink)
    return report, sink, {t.number for t in await pool.list_tasks()}


async def test_an_oversized_quoted_cell_is_one_rejected_row_never_tasks(pool: Pool) -> None:
    """A 140 KB quoted cell holding lines that look like rows: the old reader refused it at
    csv's field limit and went on inside the cell (two queued tasks from the text, the real
    rows after it lost without a report)."""
    cell = ("x" * 70_000 + SMUGGLED) * 2
    data = ("number,name\r\n+12125550101,\"" + cell + "\"\r\n"
            "+12125550102,after\r\n+12125550103,after too\r\n").encode()
    report, sink, numbers = await _import(pool, data)
    assert numbers == {"+12125550102", "+12125550103"}
    assert (report.rows, report.added, report.rejected) == (3, 2, 1)  # type: ignore[attr-defined]
    [bad] = sink.rows
    assert bad.line == 2 and bad.cells == ()
    assert bad.reason == f"row is over {MAX_RECORD} characters (lines 2-6)"


async def test_a_quoted_cell_that_never_closes_swallows_rows_and_says_so(pool: Pool) -> None:
    data = b'number,name\r\n+12125550101,ok\r\n+12125550102,"open\r\n+12125550103,x\r\n'
    report, sink, numbers = await _import(pool, data)
    assert numbers == {"+12125550101"}
    assert [(r.line, r.reason) for r in sink.rows] == [
        (3, "a quoted cell never closes before the end of the file (lines 3-4)")]
    assert report.rows == 2  # type: ignore[attr-defined]


async def test_a_huge_line_without_a_line_end_is_read_in_bounded_pieces(pool: Pool) -> None:
    data = b"number,name\n+12125550101,a\n+12125550102," + b"y" * (3 * MAX_RECORD)
    _, sink, numbers = await _import(pool, data)
    assert numbers == {"+12125550101"}
    assert [(r.line, r.reason) for r in sink.rows] == [
        (3, f"row is over {MAX_RECORD} characters")]


async def test_rejected_rows_are_streamed_not_kept(pool: Pool) -> None:
    bad = 5_000
    data = "number\n" + "call me\n" * bad + "+12125550101\n"
    report, sink, numbers = await _import(pool, data.encode())
    assert len(sink.rows) == bad and report.rejected == bad  # type: ignore[attr-defined]
    assert len(report.first_rejects) == KEEP_REJECTS  # type: ignore[attr-defined]
    assert numbers == {"+12125550101"}


def test_the_rejects_file_neutralises_spreadsheet_formulas(redis_url: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    monkeypatch.delenv("ACDKIT_CONFIG", raising=False)
    leads = tmp_path / "leads.csv"
    hostile = ["=cmd|' /C calc'!A0", "+1 900 555 0142", "@SUM(A1)", "-2+3", "\tx", "\rx"]
    with leads.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["number", "=HYPERLINK(\"http://x\")", "note"])
        for cell in hostile:
            writer.writerow([cell, cell, "plain"])
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(main, ["tasks", "import", str(leads), "--skill", "sales",
                                       "--rejects", str(rejects), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["rejected"] == len(hostile)
    with rejects.open(newline="", encoding="utf-8") as fh:
        written = list(csv.reader(fh))
    assert written[0] == ["line", "reason", "number", "'=HYPERLINK(\"http://x\")", "note"]
    for row, cell in zip(written[1:], hostile, strict=True):
        assert row[2] == row[3] == "'" + cell, row
        assert row[4] == "plain"
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r"))
               for row in written for c in row)


# -- properties of the record splitter -----------------------------------------------------

free_text = st.text(st.sampled_from('ab ,"\r\n+1212555019=@'), max_size=60)
cells_of_row = st.lists(free_text, min_size=2, max_size=2)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cells_of_row, max_size=12), st.integers(20, 200))
def test_every_row_is_read_intact_or_rejected_whole(rows: list[list[str]],
                                                    limit: int) -> None:
    """Rows written by a CSV writer (any text in the cells) come back each as written, or
    as one rejected row when over the limit: never a piece of a cell as a row, never a row
    lost, and each at its line."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(["number", "name"])
    lines, line = [], 2
    for row in rows:
        lines.append(line)
        buffer = io.StringIO(newline="")
        csv.writer(buffer).writerow(row)
        line += buffer.getvalue().count("\r\n") + buffer.getvalue().replace(
            "\r\n", "").count("\r") + buffer.getvalue().replace("\r\n", "").count("\n")
        writer.writerow(row)
    text = out.getvalue()
    header, read = read_rows(io.StringIO(text, newline=""), max_chars=limit)
    assert header == ["number", "name"]
    got = list(read)
    kept = [(r[0], list(r[1].values())) for r in got if r[1] is not None]
    refused = [r for r in got if r[1] is None]
    assert all("over" in r[2] for r in refused), refused
    assert len(got) <= len(rows)
    expected = {at: row for at, row in zip(lines, rows, strict=True)}
    for at, cells in kept:
        assert expected[at] == cells
    assert {r[0] for r in got} | {at for at, row in expected.items() if row == ["", ""]} \
        == set(expected)
