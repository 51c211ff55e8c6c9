"""The CSV fuzz target's files through the real importer (``store.imports.import_csv`` on a
real Redis): every file ends in a report that accounts for each row, or in ``BadRow`` for line
1 / ``ConfigError`` for the header map; nothing else escapes. ``make fuzz`` runs the pure part
(tests/fuzz/targets.py, ``csv-import``) 100,000 times; this checks the glue around it."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from poolkit import RULES, T0
from tests.fuzz.targets import IMPORT_PLAN, csv_bytes

from acdkit.core.errors import BadRow, ConfigError
from acdkit.store.connection import connect
from acdkit.store.imports import import_csv
from acdkit.store.pool import Pool


async def _import(redis_url: str, data: bytes) -> None:
    pool = Pool(await connect(redis_url), RULES)
    try:
        report = await import_csv(pool, io.BytesIO(data), IMPORT_PLAN, T0)
    except (BadRow, ConfigError) as exc:
        assert not isinstance(exc, BadRow) or exc.line == 1, exc
        return
    finally:
        await pool.close()
    assert report.rows == report.added + report.already + report.dropped + report.rejected
    assert all(r.reason for r in report.first_rejects)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(csv_bytes)
def test_any_file_gives_a_report_or_a_typed_error(redis_url: str, data: bytes) -> None:
    asyncio.run(_import(redis_url, data))


@pytest.mark.parametrize("data", [
    b'"' + b"n" * 140_000 + b'"\r\n+12025550123\r\n',  # a header cell over csv's field limit
    b"number\r\n\"" + b"1" * 140_000 + b"\"\r\n+12025550123\r\n",  # a row cell over it
    b"number,due\r\n+12025550123," + b"9" * 400 + b"\r\n",  # a due time of 'inf'
    b"num\x00ber\r\n+12025550123\r\n", b"\xff\xfe\x00n", b"", b"\r\n\r\n",
])
def test_fuzz_found_files(redis_url: str, data: bytes) -> None:
    asyncio.run(_import(redis_url, data))


async def test_an_out_of_range_due_time_is_a_rejected_row(pool: Pool) -> None:
    plan = replace(IMPORT_PLAN, source="due.csv")
    data = b"number,due\r\n+12025550123," + b"9" * 400 + b"\r\n+12025550124,\r\n"
    report = await import_csv(pool, io.BytesIO(data), plan, T0)
    assert (report.rows, report.added) == (2, 1)
    assert [(r.line, r.reason) for r in report.first_rejects] == \
        [(2, "due time '9999999999999999999999999999999999999999' is out of range")]
