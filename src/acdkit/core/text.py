"""Free text from outside (settings, FastAGI headers, CLI options) without the characters
that change what a log line, a terminal or a protocol header means.

A *control character* here is any of: C0 and C1 controls and DEL (which carry CR/LF header
injection and the ESC of terminal escape sequences), the Unicode line and paragraph
separators, the bidirectional overrides and isolates (text that reads differently than it
is stored), the byte-order mark, and lone surrogates (the undecodable bytes of an
environment variable or a command-line argument, as Python keeps them).
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff"
    "\ud800-\udfff]")


def has_control(text: str) -> bool:
    """True when ``text`` holds a control character (see the module docstring)."""
    return _CONTROL.search(text) is not None


def scrub(text: str) -> str:
    """``text`` with each control character replaced by U+FFFD: safe to log and to store."""
    return _CONTROL.sub(REPLACEMENT, text)


def shown(text: str, limit: int = 40) -> str:
    """A short, quoted, scrubbed form of ``text`` for an error message."""
    cut = text[:limit] + ("..." if len(text) > limit else "")
    return repr(scrub(cut))


def text_problem(text: str, max_length: int) -> str | None:
    """Why ``text`` cannot be taken as one line of free text (too long, a control
    character), or None when it can."""
    if len(text) > max_length:
        return f"is {len(text)} characters long (at most {max_length})"
    found = _CONTROL.search(text)
    if found is not None:
        return f"holds a control character (U+{ord(found.group()):04X})"
    return None
