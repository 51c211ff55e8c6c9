"""The outbound CLI against real Redis: dnc, followup, explain, cancel, stats."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from acdkit.cli import main

pytestmark = pytest.mark.integration

RULES = """
[numbers]
calling_hours = "mon-sun 00:00-24:00"
do_not_call = "+12125550199"
[[rules]]
name = "agent-asked"
source = "agent"
add_priority = 15
"""


@pytest.fixture
def cli(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> Callable[..., Any]:
    config = tmp_path / "acdkit.toml"
    config.write_text(RULES, encoding="utf-8")
    monkeypatch.setenv("ACDKIT_CONFIG", str(config))
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(main, list(args))
        assert result.exit_code == code, result.output
        return json.loads(result.output) if "--json" in args else result.output

    return invoke


def test_do_not_call_list_commands(cli: Callable[..., Any], tmp_path: Path) -> None:
    assert "2 added" in cli("dnc", "add", "212-555-0142", "+1 212 555 0143")
    assert "0 added, 1 already" in cli("dnc", "add", "2125550142")
    listing = tmp_path / "dnc.txt"
    listing.write_text("# ours\nnumber\n2125550144,old\nnot a number\n", encoding="utf-8")
    assert "1 added, 0 already listed, 1 rejected" in cli("dnc", "import", str(listing))
    assert [r["number"] for r in cli("dnc", "list", "--json")] == [
        "+12125550142", "+12125550143", "+12125550144"]
    assert "1 removed" in cli("dnc", "remove", "2125550143")
    assert "bad_characters" in cli("dnc", "add", "21255x", code=65)
    [made] = cli("tasks", "followup", "2125550142", "--skill", "sales", "--json")
    assert made["task"] is None  # listed: no follow-up


def test_followup_explain_cancel_and_stats(cli: Callable[..., Any]) -> None:
    [made] = cli("tasks", "followup", "(212) 555-0150", "--skill", "sales", "--agent", "7",
                 "--json")
    task = made["task"]
    assert (task["number"], task["source"], task["priority"]) == ("+12125550150", "agent", 15)
    assert "pending for that number" in cli("tasks", "followup", "2125550150", "--skill",
                                            "sales")
    [explained] = cli("tasks", "explain", task["id"], "--json")
    assert explained["priority"]["rules_fired"] == ["agent-asked"]
    assert explained["priority"]["rules_now"] == ["agent-asked"]
    assert explained["priority"]["source_priority"] == 0
    compliance = explained["compliance"]
    assert (compliance["dialable_now"], compliance["do_not_call_list"],
            compliance["dials_today"], compliance["max_dials_per_day"]) == (True, False, 0, 6)
    [shown_stats] = cli("stats", "--json")
    [row] = shown_stats["skills"]
    assert (row["skill"], row["waiting"], row["ready"], row["on_call"]) == ("sales", 1, 0, 0)
    assert row["oldest_wait"] is not None and row["done_last_hour"] == 0
    assert "WAITING" in cli("stats")
    assert "cancelled" in cli("tasks", "cancel", task["id"])
    assert cli("tasks", "cancel", task["id"], code=77)
    [shown] = cli("tasks", "show", task["id"], "--json")
    assert shown["task"]["state"] == "cancelled"
    [again] = cli("tasks", "followup", "2125550150", "--skill", "sales", "--json")
    assert again["task"] is not None  # the cancelled one no longer blocks the number
    assert cli("tasks", "explain", "nope", code=66)
