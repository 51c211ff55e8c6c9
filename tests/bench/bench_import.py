"""Import benchmark: ``acdkit tasks import`` of a 100,000-row lead list with 1% bad rows.

Writes the file (tests/integration/leadsfile.py), imports it into a fresh redis-server of
its own through the same code as the CLI (``store.imports.import_csv``), and prints rows per
second and the peak RSS of this process (figures printed, not asserted). Then imports it
again (everything already there) to time the re-import. ``--out FILE.json`` writes them.

    python tests/bench/bench_import.py --rows 100000 --out var/results/bench-import.json

``--file-mb N`` measures memory instead: a generated N MB lead file (1,000 distinct numbers
repeated, so Redis stays small; every second row bad; a 140 KB quoted cell every 10 MB)
imported once with every rejected row streamed to a rejects file, as the CLI does. The
peak RSS of a bounded importer stays flat as N grows (target: under 100 MB for 1,024)::

    python tests/bench/bench_import.py --file-mb 1024
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from bench_dispatch import start_redis
from leadsfile import number_of, write_leads

from acdkit.cli.outbound import RejectsFile
from acdkit.core.importing import ImportPlan
from acdkit.core.numbers import NumberPolicy
from acdkit.core.routing import PriorityRules
from acdkit.store.connection import connect
from acdkit.store.imports import import_csv
from acdkit.store.pool import Pool


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


async def measure(url: str, path: Path, rows: int) -> dict[str, Any]:
    pool = Pool(await connect(url), PriorityRules())
    plan = ImportPlan(source=f"csv:{path.name}", default_skill="sales", policy=NumberPolicy())
    figures: dict[str, Any] = {"rows": rows, "file_mb": round(path.stat().st_size / 2**20, 1),
                               "rss_before_mb": round(peak_rss_mb(), 1)}
    try:
        for run in ("first", "again"):
            start = time.perf_counter()
            with path.open("rb") as fh:
                report = await import_csv(pool, fh, plan, time.time())
            took = time.perf_counter() - start
            figures[run] = {"seconds": round(took, 2), "rows_per_s": round(rows / took),
                            "added": report.added, "already": report.already,
                            "rejected": report.rejected,
                            "peak_rss_mb": round(peak_rss_mb(), 1)}
        info = await pool.redis.info("memory")
        figures["redis_used_mb"] = round(int(info["used_memory"]) / 2**20, 1)
    finally:
        await pool.close()
    return figures


def write_big(path: Path, mb: int) -> int:
    """A hostile lead file of about ``mb`` MB; the number of rows written."""
    rows, target = 0, mb * 2**20
    big = '"' + ("free text +12125550199," * 6_000) + '"'
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("number,name,note\r\n")
        while out.tell() < target:
            lines = []
            for i in range(10_000):
                n = rows + i
                lines.append(f"{number_of(n % 1_000)},Lead {n},ok\r\n" if n % 2 else
                             f"=cmd|' /C calc'!A{n},Lead {n},bad\r\n")
            if (out.tell() // (10 * 2**20)) != ((out.tell() + 400_000) // (10 * 2**20)):
                lines.append(f"+12125550100,{big},oversized\r\n")
            out.write("".join(lines))
            rows += len(lines)
    return rows


async def measure_big(url: str, path: Path, rows: int, rejects: Path) -> dict[str, Any]:
    pool = Pool(await connect(url), PriorityRules())
    plan = ImportPlan(source=f"csv:{path.name}", default_skill="sales", policy=NumberPolicy())
    figures: dict[str, Any] = {"rows": rows, "file_mb": round(path.stat().st_size / 2**20, 1),
                               "rss_before_mb": round(peak_rss_mb(), 1)}
    try:
        start = time.perf_counter()
        with path.open("rb") as fh, rejects.open("w", newline="", encoding="utf-8") as out:
            report = await import_csv(pool, fh, plan, time.time(), rejects=RejectsFile(out))
        took = time.perf_counter() - start
        figures.update(seconds=round(took, 1), rows_per_s=round(report.rows / took),
                       added=report.added, already=report.already, rejected=report.rejected,
                       kept_in_memory=len(report.first_rejects),
                       rejects_file_mb=round(rejects.stat().st_size / 2**20, 1),
                       peak_rss_mb=round(peak_rss_mb(), 1))
    finally:
        await pool.close()
    return figures


def big(mb: int, out: Path | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="acdkit-bench-import-"))
    proc, url, redis_dir = start_redis()
    try:
        path = workdir / "leads.csv"
        rows = write_big(path, mb)
        figures = asyncio.run(measure_big(url, path, rows, workdir / "rejects.csv"))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(redis_dir, ignore_errors=True)
    print(f"import of a {figures['file_mb']} MB file ({rows:,} rows): {figures['seconds']} s, "
          f"{figures['rows_per_s']:,} rows/s, {figures['rejected']:,} rejected (streamed, "
          f"{figures['kept_in_memory']} kept), peak RSS {figures['peak_rss_mb']} MB "
          f"(before: {figures['rss_before_mb']} MB)")
    if out:
        out.write_text(json.dumps(figures, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--file-mb", type=int, help="measure memory on a file this large")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.file_mb:
        big(args.file_mb, args.out)
        return
    workdir = Path(tempfile.mkdtemp(prefix="acdkit-bench-import-"))
    proc, url, redis_dir = start_redis()
    try:
        path = workdir / "leads.csv"
        write_leads(path, args.rows)
        figures = asyncio.run(measure(url, path, args.rows))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(redis_dir, ignore_errors=True)
    first, again = figures["first"], figures["again"]
    print(f"import of {args.rows:,} rows ({figures['file_mb']} MB, 1% bad): "
          f"{first['seconds']} s, {first['rows_per_s']:,} rows/s, "
          f"{first['added']:,} added, {first['rejected']:,} rejected, "
          f"peak RSS {first['peak_rss_mb']} MB (before: {figures['rss_before_mb']} MB)")
    print(f"re-import: {again['seconds']} s, {again['rows_per_s']:,} rows/s, "
          f"{again['already']:,} already there, {again['added']} added; "
          f"Redis used {figures['redis_used_mb']} MB")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
