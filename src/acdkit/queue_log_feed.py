"""The queue_log feed: a consumer of the KPI stream that appends Asterisk ``queue_log`` lines
(core/queue_log.py) to a file and/or a SQLite table, run by ``serve`` beside the calls
(docs/kpis.md). It never blocks a call: it only reads the stream the scripts already wrote.

The id of the last entry written is kept in Redis (``<base>queue_log:last``) so a restart
resumes where it stopped; the hour before it is read again, silently, to recover what the
lines of calls still in progress need. Delivery is at least once: a crash between writing a
batch and saving its id writes that batch again.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from acdkit.config import KpiConfig
from acdkit.core.errors import AcdError
from acdkit.core.kpi_journal import Event
from acdkit.core.queue_log import Line, QueueLog
from acdkit.store.kpis import read_events
from acdkit.store.pool import Pool

log = logging.getLogger(__name__)

REPLAY = 3600.0  # seconds read again after a restart to rebuild the calls in progress
TABLE = """CREATE TABLE IF NOT EXISTS queue_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT, callid TEXT, queuename TEXT, agent TEXT,
  event TEXT, data TEXT, data1 TEXT, data2 TEXT, data3 TEXT, data4 TEXT, data5 TEXT)"""


def write_file(path: Path, lines: Sequence[Line]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.writelines(line.text() + "\n" for line in lines)


def write_sqlite(path: Path, lines: Sequence[Line]) -> None:
    """Rows shaped like Asterisk's realtime queue_log table (data = all fields, joined)."""
    with sqlite3.connect(path) as db:
        db.execute(TABLE)
        db.executemany(
            "INSERT INTO queue_log (time, callid, queuename, agent, event, data, data1, data2,"
            " data3, data4, data5) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(str(x.time), x.callid, x.queue, x.agent, x.verb, "|".join(x.data),
              *(list(x.data[:5]) + [""] * (5 - len(x.data[:5])))) for x in lines])
    db.close()


class QueueLogFeed:
    def __init__(self, pool: Pool, config: KpiConfig) -> None:
        self.pool = pool
        self.config = config
        self.skills: dict[str, list[str]] = {}
        self.log = QueueLog(lambda agent: self.skills.get(agent, []))
        self.key = f"{pool.keys.base}queue_log:last"

    async def _lines(self, events: Sequence[Event]) -> list[Line]:
        if any(e["kind"] == "agent" and e["entity"] not in self.skills for e in events):
            self.skills = {a.id: sorted(a.skills) for a in await self.pool.list_agents()}
        return [line for e in events for line in self.log.lines(e)]

    async def _write(self, lines: Sequence[Line]) -> None:
        if self.config.queue_log:
            await asyncio.to_thread(write_file, Path(self.config.queue_log), lines)
        if self.config.queue_log_sqlite:
            await asyncio.to_thread(write_sqlite, Path(self.config.queue_log_sqlite), lines)

    async def resume(self) -> str:
        """Rebuild the calls in progress from before the saved position; return it."""
        last = cast(str | None, await self.pool.redis.get(self.key))
        if last is None:
            return ""
        stop = int(last.split("-")[0]) / 1000
        events, _ = await read_events(self.pool, stop - REPLAY, stop)
        await self._lines([e for e in events if e["ts"] <= stop])
        return last

    async def step(self, after: str) -> str:
        """Write the lines of the entries after ``after``; return the new position."""
        events, last = await read_events(self.pool, 0.0, None, after=after)
        lines = await self._lines(events)
        if lines:
            await self._write(lines)
        if last and last != after:
            await self.pool.redis.set(self.key, last)
        return last

    async def run(self, now: float, interval: float = 1.0) -> None:
        """Follow the stream until cancelled (from ``now`` on when there is no saved
        position)."""
        after = await self.resume() or f"{int(now * 1000)}-0"
        while True:
            try:
                after = await self.step(after)
            except (AcdError, OSError, sqlite3.Error) as err:
                log.warning("queue_log: %s", err)
            await asyncio.sleep(interval)
