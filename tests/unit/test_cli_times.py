"""Times for people in the CLI (cli/common.py): tables in the center's zone, ISO-like; JSON
keeps epoch seconds and adds ``<key>_iso``."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import click
from click.testing import CliRunner

from acdkit.cli.common import emit, human_time, is_time_key, show_fields, with_iso
from acdkit.config import CenterSettings, Settings

NEW_YORK = ZoneInfo("America/New_York")
TS = 1796412605.25  # 2026-12-04 19:30:05.25 UTC


def test_human_time_is_in_the_zone_to_the_second() -> None:
    assert human_time(TS, NEW_YORK) == "2026-12-04 14:30:05"
    assert human_time(TS, ZoneInfo("UTC")) == "2026-12-04 19:30:05"
    assert human_time(None, NEW_YORK) == ""


def test_time_keys() -> None:
    assert all(map(is_time_key, ["ts", "at", "due_at", "created_at"]))
    assert not any(map(is_time_key, ["attempts", "state", "chat", "oldest_wait"]))


def test_json_keeps_epoch_and_adds_iso_at_any_depth() -> None:
    value = {"task": {"due_at": TS, "created_at": None, "state": "queued"},
             "history": [{"ts": TS, "event": "due", "at": True}]}
    out = with_iso(value, NEW_YORK)
    assert out["task"]["due_at"] == TS
    assert out["task"]["due_at_iso"] == "2026-12-04T14:30:05-05:00"
    assert "created_at_iso" not in out["task"]  # None stays None, no ISO string
    assert out["history"][0]["ts_iso"] == "2026-12-04T14:30:05-05:00"
    assert "at_iso" not in out["history"][0]  # a flag, not a time


def _command(timezone: str, as_json: bool) -> click.Command:
    @click.command()
    @click.pass_context
    def show(ctx: click.Context) -> None:
        ctx.ensure_object(dict)["settings"] = Settings(center=CenterSettings(timezone=timezone))
        emit([{"id": "t1", "due_at": TS, "ended_at": None}], as_json, ["id", "due_at",
                                                                       "ended_at"])
        show_fields({"id": "t1", "due_at": TS})

    return show


def test_tables_print_the_center_zone() -> None:
    out = CliRunner().invoke(_command("America/New_York", False)).output.splitlines()
    assert out[0].split() == ["ID", "DUE", "ENDED"]
    assert out[1].split() == ["t1", "2026-12-04", "14:30:05"]
    assert out[3].strip() == "due: 2026-12-04 14:30:05"
    tokyo = CliRunner().invoke(_command("Asia/Tokyo", False)).output
    assert "2026-12-05 04:30:05" in tokyo


def test_json_rows_keep_epoch_seconds() -> None:
    out = CliRunner().invoke(_command("America/New_York", True)).output
    rows = json.loads(out[: out.rindex("]") + 1])
    assert rows == [{"id": "t1", "due_at": TS, "due_at_iso": "2026-12-04T14:30:05-05:00",
                     "ended_at": None}]
