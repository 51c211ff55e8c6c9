"""The dependency rule (docs/architecture.md §3): the core is pure (no I/O libraries, no
adapters, no clock reads), every module of src/acdkit imports only what its layer may
(``MAY_IMPORT``), no acdkit module is imported inside a function, and no import cycle exists.

Each module is read with ``ast`` (never imported), so a forbidden import fails here even
when it sits in a branch no other test runs.
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


# -- the dependency rule, for every module (docs/architecture.md §3) ----------------------------
#
# Each module of src/acdkit is in one layer: the longest dotted prefix below that names it (a
# package names all its modules). A module imports modules of its own layer and of the layers
# its row lists, nothing else; every import counts, at the top of a module, under
# TYPE_CHECKING or inside a function. The adapters each form a layer of their own, so none
# imports another: what two of them need is in services/ or the core.

ADAPTERS = ("dispatch", "ari", "ami", "agi", "web", "jobs", "queue_log_feed")
LOW = ("core", "base", "store", "services")
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "core": (),  # pure: no I/O, no clock (the tests above)
    "base": ("core",),  # settings, policies, ports, Asterisk vocabulary: no I/O of their own
    "store": ("core", "base"),  # Redis
    "services": ("core", "base", "store"),  # what more than one adapter needs
    **{adapter: LOW for adapter in ADAPTERS},
    "bootstrap": (*LOW, *ADAPTERS),  # the one place that wires adapters together
    "cli": (*LOW, *ADAPTERS, "bootstrap"),  # commands, and doctor
    "testing": LOW,  # fakes for tests and benchmarks: nothing in src imports them
    "labkit": (),  # the lab's tooling, outside the layers
}
LAYER_OF: dict[str, str] = {
    "acdkit": "base",  # the package itself: its version
    "acdkit.core": "core",
    "acdkit.config": "base", "acdkit.config_rules": "base", "acdkit.policies": "base",
    "acdkit.ports": "base", "acdkit.dialplan_vars": "base", "acdkit.limits": "base",
    "acdkit.loopwatch": "base",  # a watch of the event loop: asyncio and a log
    "acdkit.stopping": "base",  # the loops' stop: asyncio only
    "acdkit.speech.audio": "base",  # audio formats, pure: the store checks uploads with them
    "acdkit.store": "store",
    "acdkit.services": "services", "acdkit.jobqueue": "services",
    "acdkit.messaging": "services", "acdkit.speech": "services",
    "acdkit.httplimits": "services", "acdkit.stats": "services",
    **{f"acdkit.{adapter}": adapter for adapter in ADAPTERS},
    "acdkit.bootstrap": "bootstrap",
    "acdkit.cli": "cli", "acdkit.__main__": "cli", "acdkit.doctor": "cli",
    "acdkit.doctor_install": "cli", "acdkit.doctor_sentinel": "cli", "acdkit.checks": "cli",
    "acdkit.exposure": "cli",
    "acdkit.testing": "testing",
    "acdkit.labkit": "labkit",
}
# Imports inside a function that are meant: a command loads the servers' wiring (aiohttp,
# the ARI/AMI/AGI adapters), RQ or the doctor only when it runs, so every other command of
# the CLI starts without them. Nothing else imports an acdkit module inside a function.
LOCAL_IMPORTS = frozenset({
    ("acdkit.cli", "acdkit.bootstrap"), ("acdkit.cli", "acdkit.doctor"),
    ("acdkit.cli.agi", "acdkit.bootstrap"), ("acdkit.cli.common", "acdkit.bootstrap"),
    ("acdkit.cli.web", "acdkit.bootstrap"), ("acdkit.cli.worker", "acdkit.bootstrap"),
    ("acdkit.cli.requests", "acdkit.jobqueue"),
})
SRC = CORE.parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def layer_of(module: str) -> str:
    prefixes = [p for p in LAYER_OF if module == p or module.startswith(p + ".")]
    assert prefixes, f"{module} is in no layer: add it to LAYER_OF"
    return LAYER_OF[max(prefixes, key=len)]


def imports_of(module: str) -> list[tuple[str, int, bool]]:
    """The acdkit modules ``module`` imports: (name, line, inside a function). A name
    imported from a package is the submodule when there is one (``from acdkit.ari import
    survey`` imports ``acdkit.ari.survey``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, inner) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, *([child.module] if child.module else [])])
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append((sub if sub in MODULES else base, child.lineno, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return [(n, line, local) for n, line, local in found
            if n == "acdkit" or n.startswith("acdkit.")]


def test_every_layer_has_a_row_and_every_module_a_layer() -> None:
    assert set(LAYER_OF.values()) == set(MAY_IMPORT)
    assert {layer_of(m) for m in MODULES} == set(MAY_IMPORT)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_imports_only_what_its_layer_may(module: str) -> None:
    layer = layer_of(module)
    allowed = {layer, *MAY_IMPORT[layer]}
    bad = [f"line {line}: {name} ({layer_of(name)})" for name, line, _ in imports_of(module)
           if layer_of(name) not in allowed]
    assert bad == [], f"{module} ({layer}) may import {sorted(allowed)}"


def test_no_acdkit_module_is_imported_inside_a_function() -> None:
    local = {(m, name) for m in MODULES for name, _, inside in imports_of(m) if inside}
    assert local - LOCAL_IMPORTS == set()
    assert local >= LOCAL_IMPORTS, "an entry of LOCAL_IMPORTS is no longer needed: drop it"


def test_nothing_imports_the_tests() -> None:
    for module, path in MODULES.items():
        names = imported_modules(ast.parse(path.read_text(encoding="utf-8")), module)
        assert not [n for n in names if n.split(".")[0] == "tests"], module


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The import cycles of ``graph``: its strongly connected parts of two modules or more
    (Tarjan), and any module that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for after in sorted(graph.get(node, ())):
            if after not in index:
                connect(after)
                low[node] = min(low[node], low[after])
            elif after in stack:
                low[node] = min(low[node], index[after])
        if low[node] == index[node]:
            part = set()
            while True:
                top = stack.pop()
                part.add(top)
                if top == node:
                    break
            if len(part) > 1 or node in graph.get(node, ()):
                found.append(frozenset(part))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_checkers_find_cycles() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [frozenset("abc")]
    assert cycles({"a": {"a"}}) == [frozenset("a")]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle() -> None:
    """Every import counts, under TYPE_CHECKING and inside functions too: a cycle hidden
    that way is still one."""
    graph = {m: {name for name, _, _ in imports_of(m) if name in MODULES} - {m}
             for m in MODULES}
    assert cycles(graph) == []
