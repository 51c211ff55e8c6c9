"""`tasks show`, `tasks list` and `callbacks list` against real Redis print times in the
center's zone; their JSON keeps epoch seconds and adds ISO strings."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from acdkit.cli import main

pytestmark = pytest.mark.integration
ZONE = "Asia/Kolkata"  # +05:30: a half-hour offset shows a wrong zone at once


def test_tasks_show_prints_center_times(redis_url: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "acdkit.toml"
    config.write_text(f'[center]\ntimezone = "{ZONE}"\n[numbers]\n'
                      'calling_hours = "mon-sun 00:00-24:00"\n', encoding="utf-8")
    monkeypatch.setenv("ACDKIT_CONFIG", str(config))
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    runner = CliRunner()
    made = runner.invoke(main, ["tasks", "followup", "2125550150", "--skill", "sales", "--json"])
    task = json.loads(made.output)[0]["task"]
    created = task["created_at"]
    assert isinstance(created, float)
    assert task["created_at_iso"] == datetime.fromtimestamp(created, ZoneInfo(ZONE)).isoformat(
        timespec="seconds")
    assert task["created_at_iso"].endswith("+05:30")

    shown = runner.invoke(main, ["tasks", "show", task["id"]]).output
    local = datetime.fromtimestamp(created, ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M:%S")
    assert f"created: {local}" in shown
    assert not re.search(r"\d{10}\.\d", shown)  # no raw epoch floats anywhere
    [story] = json.loads(runner.invoke(main, ["tasks", "show", task["id"], "--json"]).output)
    assert story["history"][0]["ts_iso"].endswith("+05:30")
