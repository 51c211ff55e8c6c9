"""The wheel is a whole install: built with `python -m build`, installed into a fresh venv
outside the checkout (its dependencies from requirements-app.lock), it runs the CLI and a
store integration test against a real redis-server with its own Lua scripts, and carries the
dialplan snippets, the prompts list and the lab's SIPp scenarios."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
TEST_TOOLS = ("pytest", "pytest-asyncio", "pytest-mock", "hypothesis")
IN_WHEEL = ("acdkit/store/lua/claim.lua", "acdkit/py.typed",
            "acdkit/labkit/scenarios/caller.xml",
            "acdkit-0.1.0.data/data/share/acdkit/dialplan/extensions_acdkit.conf",
            "acdkit-0.1.0.data/data/share/acdkit/prompts.tsv")


def _run(*args: str | Path, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=900)
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _locked(names: tuple[str, ...]) -> list[str]:
    """``name==version`` of ``names`` as requirements.lock pins them."""
    lock = (ROOT / "requirements.lock").read_text()
    return [re.search(rf"^({re.escape(n)}==[^ ;\\\n]+)", lock, re.M)[1]  # type: ignore[index]
            for n in names]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel and the locked dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", work / "dist", ROOT)
    [wheel] = (work / "dist").glob("acdkit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not [n for n in IN_WHEEL if n not in names]
    venv = work / "venv"
    _run(sys.executable, "-m", "venv", venv)
    pip = venv / "bin" / "pip"
    _run(pip, "install", "-q", "--require-hashes", "-r", ROOT / "requirements-app.lock")
    _run(pip, "install", "-q", "--no-deps", wheel)
    _run(pip, "install", "-q", *_locked(TEST_TOOLS))
    return venv


def test_the_installed_cli_runs(installed: Path) -> None:
    acdkit = installed / "bin" / "acdkit"
    assert "Usage: acdkit" in _run(acdkit, "--help", cwd=installed)
    assert "doctor" in _run(acdkit, "doctor", "--help", cwd=installed)
    shared = installed / "share" / "acdkit"
    assert (shared / "dialplan" / "extensions_acdkit.conf").read_text().startswith(";")
    assert "welcome\t" in (shared / "prompts.tsv").read_text()


def test_an_integration_test_passes_on_the_installed_package(installed: Path) -> None:
    python = installed / "bin" / "python"
    where = _run(python, "-c", "import acdkit; print(acdkit.__file__)", cwd=installed)
    assert where.startswith(str(installed)), where  # not the checkout's src/
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    out = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "tests/integration/test_pool.py", cwd=ROOT, env=env)
    assert re.search(r"\d+ passed", out) and "failed" not in out, out
