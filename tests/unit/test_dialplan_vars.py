"""dialplan_vars.py and dialplan/*.conf agree: every ACDKIT_* channel variable the snippets
use is defined once in Python (or is one of the [globals] an admin sets), every context
Python names exists, and extension 200 branches on the statuses the AGI routes set."""

from __future__ import annotations

import re
from pathlib import Path

from acdkit import dialplan_vars as dv

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = sorted((ROOT / "dialplan").glob("*.conf"))
GLOBALS = ROOT / "asterisk" / "etc" / "extensions.conf"


def _text() -> str:
    return "\n".join(p.read_text() for p in SNIPPETS)


def _code(text: str) -> str:
    """The dialplan without comments (a `;` starts one)."""
    return "\n".join(line.split(";", 1)[0] for line in text.splitlines())


def test_every_acdkit_variable_in_the_snippets_is_defined_in_python() -> None:
    python = {v for k, v in vars(dv).items() if k.isupper() and isinstance(v, str)
              and v.startswith("ACDKIT_")}
    globals_ = set(re.findall(r"^(ACDKIT_[A-Z_]+)\s*=", GLOBALS.read_text(), re.M))
    used = set(re.findall(r"\bACDKIT_[A-Z_]+\b", _code(_text())))
    assert used - python - globals_ == set()
    assert {dv.STATUS, dv.QUEUE, dv.TASK_ID, dv.PRIORITY, dv.SINCE, dv.DIAL} <= used


def test_the_contexts_python_names_exist() -> None:
    contexts = set(re.findall(r"^\[([a-z0-9-]+)\]", _code(_text()), re.M))
    assert {dv.FAILURE_CONTEXT, dv.CALLBACK_QUEUE_CONTEXT,
            dv.CALLBACK_AGENT_FIRST_CONTEXT} <= contexts


def test_extension_200_branches_on_the_route_statuses() -> None:
    code = _code(_text())
    assert f'"${{{dv.STATUS}}}" = "{dv.STATUS_WAIT}"' in code
    assert f'"${{{dv.STATUS}}}" = "{dv.STATUS_STORED}"' in code
    assert "/callback-offer?queue=" in code
