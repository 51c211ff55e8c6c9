"""CSV import into real Redis: 100,000 rows with 1% bad ones, re-import, header map, the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from leadsfile import Collected, number_of, write_leads
from poolkit import T0

from acdkit.cli import main
from acdkit.core.importing import ImportPlan, row_key
from acdkit.core.numbers import NumberPolicy
from acdkit.core.tasks import TaskKind, TaskState
from acdkit.store.dnc import dnc_add
from acdkit.store.imports import import_csv
from acdkit.store.pool import Pool

pytestmark = pytest.mark.integration

PLAN = ImportPlan(source="csv:leads.csv", default_skill="sales", policy=NumberPolicy())


async def test_a_large_file_keeps_every_good_row_once_and_reports_every_bad_one(
        pool: Pool, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    rows = 100_000
    bad = write_leads(path, rows)
    assert len(bad) == rows // 100
    ticks: list[int] = []
    sink = Collected()
    with path.open("rb") as fh:
        report = await import_csv(pool, fh, PLAN, T0, progress=lambda: ticks.append(1),
                                  rejects=sink)
    assert (report.rows, report.added, report.already) == (rows, rows - len(bad), 0)
    assert {r.line: r.reason for r in sink.rows} == bad
    assert report.rejected == len(bad) and len(report.first_rejects) == 20
    assert len(ticks) >= rows // 2_000 - 1
    redis = pool.redis
    good = [i for i in range(rows) if i + 2 not in bad]
    skill = ["support" if i % 3 == 0 else "sales" for i in good]
    ids = [row_key(PLAN.source, number_of(i), s) for i, s in zip(good, skill, strict=True)]
    assert await redis.zcard(pool.keys.tasks) == len(good)
    pipe = redis.pipeline(transaction=False)
    for task_id in ids:
        pipe.hmget(pool.keys.task(task_id), ["number", "state", "kind"])
    stored = await pipe.execute()
    assert all(s == [number_of(i), "queued", "outbound"]
               for i, s in zip(good, stored, strict=True))
    queued = await redis.zcard(pool.keys.queue("sales")) + \
        await redis.zcard(pool.keys.queue("support"))
    assert queued == len(good)

    with path.open("rb") as fh:
        again = await import_csv(pool, fh, PLAN, T0 + 60)
    assert (again.added, again.already, again.rejected) == (0, len(good), len(bad))
    assert await redis.zcard(pool.keys.tasks) == len(good)


async def test_header_map_dnc_list_and_duplicates_within_a_file(pool: Pool,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text("Phone,Customer,Queue,Score\n"
                    "212 555 0142,Ada,support,7\n"
                    "+1 212 555 0142,Ada again,support,9\n"
                    "2125550143,Bob,,1\n"
                    "2125550144,Eve,,1\n", encoding="utf-8")
    await dnc_add(pool, ["+12125550144"])
    with path.open("rb") as fh:
        report = await import_csv(pool, fh, PLAN, T0, header_map={
            "number": "Phone", "name": "Customer", "skill": "Queue", "priority": "Score"})
    assert (report.added, report.already) == (2, 1)
    assert [(r.line, r.reason) for r in report.first_rejects] == [(5, "number: do_not_call")]
    tasks = {t.number: t for t in await pool.list_tasks()}
    ada = tasks["+12125550142"]
    assert (ada.name, ada.skill, ada.priority, ada.kind) == ("Ada", "support", 7,
                                                            TaskKind.OUTBOUND)
    assert tasks["+12125550143"].skill == "sales"


def test_the_cli_imports_reports_and_writes_the_rejects(redis_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "leads.csv"
    bad = write_leads(path, 500, bad_every=50)
    rejects = tmp_path / "rejects.csv"
    cli = CliRunner()
    result = cli.invoke(main, ["tasks", "import", str(path), "--skill", "sales",
                               "--rejects", str(rejects), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)[0]
    assert (summary["rows"], summary["added"], summary["rejected"]) == (500, 490, 10)
    with rejects.open(encoding="utf-8") as fh:
        written = list(csv.DictReader(fh))
    assert {int(r["line"]): r["reason"] for r in written} == bad
    assert written[0]["crm_id"] == "c49"
    again = cli.invoke(main, ["tasks", "import", str(path)])
    assert again.exit_code == 0 and "0 added, 490 already there" in again.output
    listed = json.loads(cli.invoke(main, ["tasks", "list", "--json"]).output)
    assert len(listed) == 490 and {t["state"] for t in listed} == {TaskState.QUEUED.value}
