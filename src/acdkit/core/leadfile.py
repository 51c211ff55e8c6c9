"""A lead file's records: CSV text split into rows before any cell is parsed, in bounded memory.

Python's ``csv`` reader, after refusing a cell over its size limit, goes on *inside* that
cell: free text in a quoted cell became rows (and tasks), and the real rows after it vanished.
``Splitter`` follows the quoting of the ``excel`` dialect (``"`` opens a quoted cell only at
the start of a cell, ``""`` is a quote inside one, a line end inside one belongs to the cell)
itself, so a record ends exactly where ``csv`` would end it. A record over ``max_chars``,
and a quoted cell that never closes, become one refused ``Record`` spanning the lines they
took; reading resumes after them, never inside. Only the current record is held in memory,
and not even that once it is over the limit.

Feed it chunks as ``io.TextIOBase.readline(limit)`` returns them (``newline=""``): whole
physical lines, or pieces of a line longer than the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MAX_RECORD = 65_536  # characters of one row; the csv module's own cell limit is 131,072
_LINE_ENDS = ("\n", "\r")


class _State(Enum):
    FIELD_START = 0
    UNQUOTED = 1
    QUOTED = 2
    QUOTE_IN_QUOTED = 3  # a quote inside a quoted cell: "" (a quote) or the cell's end


@dataclass(frozen=True)
class Record:
    """One CSV record of the file: ``text`` as it stands there (with its line end), starting
    on file line ``line``; or, when ``refused`` says why, no text."""

    line: int
    text: str = ""
    refused: str = ""


def _scan(text: str, state: _State) -> _State:
    """The quoting state after ``text``, from ``state``."""
    i, n = 0, len(text)
    while i < n:
        if state is _State.QUOTE_IN_QUOTED:
            if text[i] == '"':
                state, i = _State.QUOTED, i + 1
                continue
            state = _State.UNQUOTED  # the cell's closing quote; the rest is plain text
        if state is _State.QUOTED:
            j = text.find('"', i)
            if j < 0:
                return state
            state, i = _State.QUOTE_IN_QUOTED, j + 1
            continue
        if state is _State.FIELD_START and text[i] == '"':
            state, i = _State.QUOTED, i + 1
            continue
        j = text.find(",", i)
        if j < 0:
            return _State.UNQUOTED
        state, i = _State.FIELD_START, j + 1
    return state


class Splitter:
    """Chunks of text in, complete records out (``feed``, then ``close`` at the end)."""

    def __init__(self, max_chars: int = MAX_RECORD) -> None:
        self.max_chars = max_chars
        self.line = 1  # the file line the next chunk starts on
        self._start = 1
        self._last = 1  # the file line of the last chunk fed
        self._state = _State.FIELD_START
        self._parts: list[str] = []
        self._size = 0
        self._over = False
        self._after_cr = False  # the last chunk ended in "\r": a "\n" now is its CRLF's end

    def feed(self, chunk: str) -> Record | None:
        """Take the next chunk; the record it completes, if any."""
        if self._after_cr and chunk.startswith("\n"):
            chunk = chunk[1:]  # a CRLF cut in two by the reader's limit: one line end
        self._after_cr = chunk.endswith("\r")
        if not chunk:
            return None
        if not self._parts and not self._over:
            self._start = self.line
        self._last = self.line
        self._state = _scan(chunk, self._state)
        self._size += len(chunk)
        if self._size > self.max_chars:
            self._over, self._parts = True, []
        else:
            self._parts.append(chunk)
        if not chunk.endswith(_LINE_ENDS):
            return None
        self.line += 1
        if self._state is _State.QUOTED:
            return None
        return self._take(f"row is over {self.max_chars} characters" if self._over else "")

    def close(self) -> Record | None:
        """The end of the file: the record still open, if any (refused when it is inside a
        quoted cell)."""
        if not self._parts and not self._over:
            return None
        if self._state is _State.QUOTED:
            return self._take("a quoted cell never closes before the end of the file")
        return self._take(f"row is over {self.max_chars} characters" if self._over else "")

    def _take(self, refused: str) -> Record:
        if refused and self._last > self._start:
            refused += f" (lines {self._start}-{self._last})"
        record = Record(self._start, "" if refused else "".join(self._parts), refused)
        self._state, self._parts, self._size, self._over = _State.FIELD_START, [], 0, False
        return record
