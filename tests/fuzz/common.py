"""What every fuzz target shares: the ``Target`` record and strategies for odd input."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

E164 = re.compile(r"\+[1-9][0-9]{1,14}")
REASON = re.compile(r"[a-z][a-z_]*")
DIAL = re.compile(r"PJSIP/\+?[1-9][0-9]{1,14}@[A-Za-z0-9_.-]{1,64}")
# Characters a caller or a file could slip in to break a dial string or a protocol line.
INJECTION = "&,/@^\n\r\t ;|'\"\\*#+-.()%$`{}[]:=\x00"


@dataclass(frozen=True)
class Target:
    """A parser under fuzz: ``run(one input from strategy)`` returns or raises a crash."""

    name: str
    what: str
    strategy: st.SearchStrategy[Any]
    run: Callable[[Any], None]


def splice(base: st.SearchStrategy[str], pieces: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Near-valid text: a slice of a ``base`` string replaced by a ``piece``."""
    return st.tuples(base, pieces, st.integers(0, 2000), st.integers(0, 8)).map(
        lambda t: t[0][:t[2] % (len(t[0]) + 1)] + t[1] + t[0][t[2] % (len(t[0]) + 1) + t[3]:])


odd_text = st.one_of(st.text(max_size=40), st.text(alphabet=INJECTION + "0123456789", max_size=24))
aware_nows = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                          timezones=st.just(UTC))

