"""The dialplan lines docs/dialplan-mode.md and the example snippet give admins for the optional AGI
routes are the lines of the lab's extension 210, which tests/lab/test_dialplan_routes.py
runs on Asterisk: a copy that drifts (a lost Dial option g, another QUEUESTATUS) fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUTES = ("choose-agent", "survey", "voice-request", "callback-offer")


def _code_lines(text: str) -> list[str]:
    """`same => n...` lines without comments or spacing (a `;` starts a comment)."""
    lines = (line.split(";", 1)[0].strip() for line in text.splitlines())
    return [re.sub(r"\s+", "", line).replace("n(overflow),", "n,") for line in lines
            if line.startswith("same =>")]


def _extension(text: str, exten: str) -> str:
    """The lines of ``exten`` (from its priority 1 to the next extension)."""
    found = re.search(rf"^exten => {exten},1,.*?(?=^exten =>|\Z)", text, re.M | re.S)
    assert found, exten
    return found[0]


def _docs_block() -> str:
    readme = (ROOT / "docs" / "dialplan-mode.md").read_text()
    start = readme.index("The queue extension with all of them")
    return readme[readme.index("```ini", start):readme.index("```\n", start + 20)]


LAB = set(_code_lines(_extension((ROOT / "dialplan" / "extensions_acdkit.conf").read_text(),
                                 "210")))


def test_extension_210_wires_every_optional_route() -> None:
    code = "\n".join(LAB)
    for route in ("choose-agent", "survey", "voice-request"):
        assert f"/{route}?queue=" in code, route
    assert "Dial(${ACDKIT_AGENT},15,g)" in code
    assert 'GotoIf($["${QUEUESTATUS}"="CONTINUE"]?survey)' in code


def test_the_documented_lines_are_the_lab_lines() -> None:
    lines = [line.replace("callback-offer", "voice-request") for line in
             _code_lines(_docs_block())]
    assert len(lines) >= 14
    assert [line for line in lines if line not in LAB] == []


def test_the_example_snippet_lines_are_the_lab_lines() -> None:
    example = (ROOT / "dialplan" / "extensions_acdkit_queue_example.conf").read_text()
    lines = [line.replace("callback-offer", "voice-request") for line in
             _code_lines(_extension(example, "5000"))]
    assert len(lines) >= 15
    assert [line for line in lines if line not in LAB] == []
