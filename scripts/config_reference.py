"""Write docs/configuration-reference.md from the Settings dataclasses (src/acdkit/config.py).

    python scripts/config_reference.py            # write it (`make docs`)
    python scripts/config_reference.py --check    # exit 1 when the committed page is stale

One table per section: key (and its ACDKIT_* variable), type, default, meaning. The meaning
is a field's ``metadata["doc"]`` or else the comment at the end of its line in config.py; a
section's text is its class docstring. tests/unit/test_config_reference.py fails when the
page is stale.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import sys
import tokenize
from pathlib import Path
from typing import Any

from acdkit import config
from acdkit.config import ENV_PREFIX, Secret, Settings

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration-reference.md"
HEADER = """# Configuration reference

Generated from the `Settings` dataclasses in `src/acdkit/config.py` by
`scripts/config_reference.py` (`make docs`); do not edit by hand: a test fails when this page
and the code disagree.

Settings come from, last one winning: the defaults below, the TOML file (`--config`,
`ACDKIT_CONFIG`, or `./acdkit.toml`), `ACDKIT_<SECTION>_<KEY>` environment variables, then
command-line options. Put secrets (passwords, the Redis URL with its password) in the
environment, for example the systemd units' `/etc/acdkit/acdkit.env` (see operations.md).
"""


def source_notes() -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """(class, field) → the comment ending the field's line (or the comment block right above
    it); "class.field" → its annotation as written."""
    text = Path(config.__file__).read_text(encoding="utf-8")
    comments = {tok.start[0]: tok.string.lstrip("# ").strip()
                for tok in tokenize.generate_tokens(io.StringIO(text).readline)
                if tok.type == tokenize.COMMENT}
    notes: dict[tuple[str, str], str] = {}
    types: dict[str, str] = {}
    for node in ast.parse(text).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                key = (node.name, item.target.id)
                types[f"{node.name}.{item.target.id}"] = ast.unparse(item.annotation)
                end = item.end_lineno or item.lineno
                above: list[str] = []  # a comment block right above the field
                line = item.lineno - 1
                while line in comments and text.splitlines()[line - 1].lstrip().startswith("#"):
                    above.insert(0, comments[line])
                    line -= 1
                if end in comments:
                    notes[key] = comments[end]
                elif above:
                    notes[key] = " ".join(above)
    return notes, types


def default_text(value: Any) -> str:
    if isinstance(value, Secret):
        return "(secret) empty" if not value else "(secret) set"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple | list):
        return "`[" + ", ".join(default_text(v).strip("`") for v in value) + "]`"
    if isinstance(value, dict) and not value:
        return "empty"
    return f"`{value}`"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def section_table(name: str, cls: type[Any], notes: dict[tuple[str, str], str],
                  types: dict[str, str]) -> list[str]:
    defaults = cls()
    doc = (cls.__doc__ or "").strip()
    lines = [f"## [{name}]", ""]
    if doc and not doc.startswith(f"{cls.__name__}("):  # not dataclass's generated one
        lines += [" ".join(doc.split()), ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        meaning = f.metadata.get("doc") or notes.get((cls.__name__, f.name), "")
        env = f"{ENV_PREFIX}{name}_{f.name}".upper()
        lines.append(f"| `{name}.{f.name}`<br>`{env}` | `{types[f'{cls.__name__}.{f.name}']}` "
                     f"| {default_text(getattr(defaults, f.name))} | {cell(meaning)} |")
    return [*lines, ""]


def render() -> str:
    notes, types = source_notes()
    out = [HEADER]
    others = []
    for f in dataclasses.fields(Settings):
        cls = type(getattr(Settings(), f.name))
        if dataclasses.is_dataclass(cls):
            out += section_table(f.name, cls, notes, types)
        elif f.name != "source":
            others.append(f"| `{f.name}` | `{types[f'Settings.{f.name}']}` | "
                          f"{cell(notes.get(('Settings', f.name), ''))} |")
    out += ["## Other tables", "", "| key | type | meaning |", "|---|---|---|", *others, ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the page is stale")
    args = parser.parse_args(argv)
    page = render()
    if args.check:
        if not PAGE.exists() or PAGE.read_text(encoding="utf-8") != page:
            print(f"{PAGE.relative_to(ROOT)} is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
