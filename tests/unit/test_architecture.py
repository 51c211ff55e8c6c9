"""The core is pure (docs/architecture.md §3): no I/O libraries, no adapters, no clock reads.

Each ``src/acdkit/core/*.py`` is read with ``ast`` (never imported), so a forbidden import
fails here even when it sits in a branch no other test runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "src" / "acdkit" / "core"
FORBIDDEN = frozenset({
    "asyncio", "socket", "redis", "rq", "httpx", "aiohttp", "websockets", "panoramisk",
    "subprocess", "requests", "importlib",
})
# Reading the clock makes the core untestable without patching; time is passed in.
CLOCK_READS = frozenset({
    ("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "monotonic_ns"),
    ("time", "perf_counter"), ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"),
    ("date", "today"),
})


def imported_modules(tree: ast.AST, package: str = "acdkit.core") -> list[str]:
    """Absolute names of every module ``tree`` imports (relative ones resolved in ``package``),
    including ``__import__("x")`` calls with a literal name."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.append(".".join([*base, *([node.module] if node.module else [])]))
            else:
                found.append(node.module or "")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "__import__" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append(node.args[0].value)
    return found


def violations(source: str) -> list[str]:
    """What in ``source`` breaks the core's rules: forbidden or adapter imports, clock reads."""
    tree = ast.parse(source)
    bad = []
    for name in imported_modules(tree):
        top = name.split(".")[0]
        if top in FORBIDDEN:
            bad.append(f"imports {name}")
        elif top == "acdkit" and not (name == "acdkit.core" or name.startswith("acdkit.core.")):
            bad.append(f"imports {name} (outside acdkit.core)")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if (name, node.attr) in CLOCK_READS:
                bad.append(f"reads the clock: {name}.{node.attr}")
    return bad


def core_files() -> list[Path]:
    files = sorted(CORE.glob("*.py"))
    assert files, f"no core modules found under {CORE}"
    return files


@pytest.mark.parametrize("path", core_files(), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert violations(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import redis.asyncio as r",
        "from rq import Queue",
        "from aiohttp import web",
        "import websockets, json",
        "from panoramisk import Manager",
        "import subprocess",
        "import requests",
        "import httpx",
        "import socket",
        "from acdkit.store import pool",
        "from acdkit import config",
        "import acdkit.ari.session",
        "from .. import ports",
        "from ..store.pool import Pool",
        "def f():\n    import asyncio",
        "if False:\n    from acdkit.ami import x",
        "m = __import__('socket')",
        "import importlib\nimportlib.import_module('redis')",
        "import time\nnow = time.time()",
        "from datetime import datetime\nnow = datetime.now()",
        "import datetime as d\nx = d.date.today()",
    ],
)
def test_checker_catches(source: str) -> None:
    assert violations(source), source


@pytest.mark.parametrize(
    "source",
    [
        "from acdkit.core.errors import AcdError",
        "from acdkit.core import tasks",
        "import acdkit.core",
        "from . import tasks",
        "from .errors import AcdError",
        "import phonenumbers\nfrom zoneinfo import ZoneInfo\nimport hashlib, re",
        "from datetime import datetime\nx = datetime.fromtimestamp(0)",
        "import time\nx = time.gmtime(0)",
        "asyncio_like = 1\nsocketserver_name = 'x'",
    ],
)
def test_checker_allows(source: str) -> None:
    assert violations(source) == []


# acdkit.labkit is the lab's tooling (SIPp peers, DTMF pcaps, lab ports), shipped in the package
# so that scripts/ (the demo), the tests and the benchmarks share it without scripts/ importing
# tests/. It stands outside the layers: it imports no other acdkit module, and none imports it.
LABKIT = CORE.parent / "labkit"


def test_labkit_imports_no_other_acdkit_module() -> None:
    for path in sorted(LABKIT.glob("*.py")):
        names = imported_modules(ast.parse(path.read_text(encoding="utf-8")), "acdkit.labkit")
        assert [n for n in names if n.split(".")[0] == "acdkit"
                and not n.startswith("acdkit.labkit")] == [], path.name


def test_no_acdkit_module_imports_labkit() -> None:
    for path in sorted(CORE.parent.rglob("*.py")):
        if LABKIT in path.parents:
            continue
        package = ".".join(path.relative_to(CORE.parents[1]).with_suffix("").parts[:-1])
        names = imported_modules(ast.parse(path.read_text(encoding="utf-8")), package)
        assert not [n for n in names if n.startswith("acdkit.labkit")], path
