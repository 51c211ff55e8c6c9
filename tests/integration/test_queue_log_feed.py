"""The queue_log feed against a real redis-server: lines in a file and rows in SQLite, a
restart resumes after the last line written without writing it twice."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from poolkit import kpi_day

from acdkit.config import KpiConfig
from acdkit.queue_log_feed import QueueLogFeed
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration


async def test_file_sqlite_and_resume(pool: Pool, tmp_path: Path) -> None:
    b = time.time() - 100
    config = KpiConfig(queue_log=str(tmp_path / "queue_log"),
                       queue_log_sqlite=str(tmp_path / "ql.sqlite"))
    feed = QueueLogFeed(pool, config)
    await kpi_day(pool, b)
    after = await feed.step(f"{int(b * 1000) - 1000}-0")
    verbs = [line.split("|")[4] for line in (tmp_path / "queue_log").read_text().splitlines()]
    assert verbs == ["ADDMEMBER", "ENTERQUEUE", "ENTERQUEUE", "CONNECT", "ABANDON",
                     "COMPLETECALLER", "PAUSE", "UNPAUSE"]
    with sqlite3.connect(tmp_path / "ql.sqlite") as db:
        rows = db.execute("SELECT event, data1, data2, data3 FROM queue_log "
                          "WHERE event IN ('CONNECT', 'PAUSE')").fetchall()
    db.close()
    assert rows == [("CONNECT", "4", "", "2"), ("PAUSE", "lunch", "", "")]
    # a new feed (serve restarted) resumes after the saved position: nothing twice
    again = QueueLogFeed(pool, config)
    assert await again.resume() == after
    assert await again.step(after) == after
    assert len((tmp_path / "queue_log").read_text().splitlines()) == 8
