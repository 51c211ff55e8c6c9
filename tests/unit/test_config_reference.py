"""docs/configuration-reference.md is what scripts/config_reference.py makes from the Settings
dataclasses now (run `make docs` after changing a setting), and every key says what it means."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "config_reference.py"
PAGE = ROOT / "docs" / "configuration-reference.md"


def test_the_committed_reference_is_current() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_every_key_has_type_default_and_meaning() -> None:
    rows = [line for line in PAGE.read_text().splitlines() if line.startswith("| `")]
    assert len(rows) > 50
    cells = [[c.strip() for c in row.strip("|").split(" | ")] for row in rows]
    assert [row[0] for row in cells if not row[-1]] == []
    assert any(row[0].startswith("`center.timezone`") and row[2] == '`"UTC"`' for row in cells)
