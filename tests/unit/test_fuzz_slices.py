"""A fast slice of every fuzz target (tests/fuzz/targets.py) in the regular suite, plus the
inputs past fuzz runs found, kept as regression examples. ``make fuzz`` runs the long ones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from tests.fuzz.targets import POLICIES, TARGETS, Target

SLICE = 300


@pytest.mark.parametrize("target", TARGETS.values(), ids=lambda t: t.name)
def test_fuzz_slice(target: Target) -> None:
    @settings(max_examples=SLICE, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(target.strategy)
    def one(value: Any) -> None:
        target.run(value)

    one()


def test_every_outside_parser_has_a_target() -> None:
    assert set(TARGETS) >= {"dtmf-hhmm", "say-number", "numbers", "ari-event", "ari-frame",
                            "csv-import", "agi", "ami", "cli-args"}


# Inputs fuzzing found (or that sit on an edge the fuzzer must keep covering).
NOON = datetime(2026, 3, 4, 17, 0, tzinfo=UTC)
REGRESSIONS: list[tuple[str, Any]] = [
    # panoramisk makes a list of a repeated header: MemberBoard hashed it (TypeError) and
    # outcome_of_dial_status called .upper() on it, until ami/link.py plain_event.
    ("ami", "Event: QueueMemberStatus\r\nQueue: a\r\nQueue: b\r\nInterface: PJSIP/x\r\n"
            "Status: 1\r\n\r\n"),
    ("ami", "Event: DialEnd\r\nDialStatus: A\r\nDialStatus: B\r\nUniqueid: u\r\n\r\n"),
    ("ami", "Event: QueueMember\r\nEvent: x\r\nQueue: b\r\nLocation: PJSIP/x\r\n\r\n"),
    # A status code of 000 and a Unicode-digit status: replies, not crashes.
    ("agi", (b"agi_network_script: callback-offer\n\n", "000 \x00", ["\x00"])),
    ("agi", (b"agi_network_script: x?a=1&a=2\n\n", "\u0662\u0660\u0660 result=1", ["a b"])),
    # Epoch seconds past float range, a year-1 due time, a priority of 400 digits.
    ("csv-import", (b"number,due,priority\r\n+12025550123," + b"9" * 400 + b",1\r\n"
                    b"+12025550124,0001-01-01T00:00:00,2\r\n+12025550125,,"
                    + b"9" * 400 + b"\r\n", {})),
    # "²".isdigit() is True but int("²") raises ValueError: `agents add --skill a=²`.
    ("cli-args", ("-3s", ("a=\u00b2", "vip=yes"))),
    ("cli-args", ("-" + "9" * 400 + "w", ("sales", "x=\u0663"))),
    ("numbers", ("+1 876 555 0123", POLICIES[0], NOON, "pstn&x", (0, 0, 0))),
    ("numbers", ("\u0662\u0660\u0662\u0665\u0665\u0665\u0660\u0661\u0662\u0663", POLICIES[0],
                 NOON, "pstn", (0, 0, 0))),
]


@pytest.mark.parametrize(("name", "value"), REGRESSIONS)
def test_fuzz_regressions(name: str, value: Any) -> None:
    TARGETS[name].run(value)
