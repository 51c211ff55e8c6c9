"""Fuzz targets: every parser that takes outside input, with the inputs to throw at it.

Each ``Target`` pairs a hypothesis strategy (odd input, plus near-valid shapes that reach
the deeper checks) with ``run``, which feeds one input to the parser and asserts what must
hold for any input: the parser returns a well-formed value or raises its typed error from
``core/errors.py``. Anything else escaping ``run`` is a crash.

The core parsers are here, the wire protocols (ARI, FastAGI, AMI) in tests/fuzz/wire.py.
Two users: tests/unit/test_fuzz_slices.py runs a few hundred inputs per target in the regular
suite; tests/fuzz/fuzz_targets.py (``make fuzz``) runs 100,000 or more per target, coverage-
guided by atheris when it is installed, with plain hypothesis otherwise.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from tests.fuzz.common import DIAL, E164, REASON, Target, aware_nows, odd_text, splice
from tests.fuzz.wire import agi_target, ami_target, ari_event_target, ari_frame_target

from acdkit.cli.agents import _skills
from acdkit.cli.callbacks import parse_duration, parse_since
from acdkit.core.dtmf import BusinessHours, parse_hhmm, say_number
from acdkit.core.errors import BadDtmf, BadRow, ConfigError, InvalidInput, NumberRejected
from acdkit.core.importing import FIELDS, ImportPlan, parse_row, plan_columns
from acdkit.core.numbers import (
    FORBIDDEN_IN_DIAL,
    NumberPolicy,
    Verdict,
    callee_timezone,
    check_dialable,
    dial_string,
    explain,
    normalize,
    prompt_for,
)
from acdkit.store.codec import task_from_hash, task_to_hash
from acdkit.store.imports import Row, read_rows

# ------------------------------------------------------------------ DTMF time entry (core/dtmf)

ZONES = tuple(ZoneInfo(z) for z in ("UTC", "Europe/Berlin", "America/New_York",
                                    "Australia/Lord_Howe", "America/St_Johns", "Pacific/Apia"))
HOURS_TEXT = ("mon-sun 00:00-24:00", "mon-fri 08:00-18:00; sat 09:00-12:00",
              "fri-mon 22:00-24:00,00:00-02:30", "sun 01:30-03:30")
hours_text = st.one_of(st.sampled_from(HOURS_TEXT), odd_text,
                       splice(st.sampled_from(HOURS_TEXT), odd_text))
digits = st.one_of(st.from_regex(r"[0-9]{4}", fullmatch=True),
                   st.text(alphabet="0123456789*#ABCD", max_size=6), odd_text)


def run_hhmm(case: tuple[str, str, datetime, ZoneInfo, int]) -> None:
    keyed, hours_spec, now, tz, horizon_h = case
    try:
        hours = BusinessHours.parse(hours_spec)
    except ConfigError as exc:
        assert exc.key == "business_hours"
        hours = BusinessHours.parse(HOURS_TEXT[0])
    horizon = timedelta(hours=horizon_h)
    try:
        at = parse_hhmm(keyed, now, tz, business_hours=hours, horizon=horizon)
    except BadDtmf as exc:
        assert REASON.fullmatch(exc.reason), exc.reason
        return
    assert at.tzinfo is tz and now < at <= now + horizon, (at, now)
    assert at.strftime("%H%M") == keyed and hours.is_open(at)


dtmf_target = Target(
    "dtmf-hhmm", "core/dtmf.py parse_hhmm + BusinessHours.parse",
    st.tuples(digits, hours_text, aware_nows, st.sampled_from(ZONES), st.integers(1, 24 * 15)),
    run_hhmm)


def run_say_number(case: tuple[str, str | None]) -> None:
    text, region = case
    try:
        spoken = say_number(text, region)
    except InvalidInput:
        assert not E164.fullmatch(text)
        return
    assert spoken and all(re.fullmatch(r"digits:[0-9]+", s) for s in spoken), spoken


# ------------------------------------------------------------------ number policy (core/numbers)

POLICIES = (
    NumberPolicy(default_region="US", center_timezone="America/New_York"),
    NumberPolicy(default_region="DE", center_timezone="Europe/Berlin",
                 allowed_countries=frozenset({"DE", "GB", "FR"})),
    NumberPolicy(default_region="GB", allowed_prefixes=("+447", "+4420"), keep_plus=True,
                 dnc=frozenset({"+447400123456"}), max_pending_per_number=3),
)
VALID = ("+12025550123", "(202) 555-0123", "030 123456", "+44 7400 123456", "+33 1 23 45 67 89",
         "011 1 202 555 0123", "0049 30 123456", "911", "112", "999", "+1 900 555 0123")
numbers = st.one_of(odd_text, st.sampled_from(VALID), splice(st.sampled_from(VALID), odd_text),
                    st.from_regex(r"\+?[0-9 ()-]{1,22}", fullmatch=True))
trunks = st.one_of(st.sampled_from(("pstn", "my-trunk.1")), st.text(max_size=6), odd_text)


def run_numbers(case: tuple[str, NumberPolicy, datetime, str, tuple[int, int, int]]) -> None:
    raw, policy, now, trunk, (pending, attempts, requests) = case
    try:
        e164 = normalize(raw, policy)
    except NumberRejected as exc:
        assert REASON.fullmatch(exc.reason), exc.reason
        assert explain(exc.reason) and prompt_for(exc.reason).startswith("sound:acdkit/")
    else:
        assert E164.fullmatch(e164) and not FORBIDDEN_IN_DIAL & set(e164)
        assert normalize(e164, policy) == e164  # idempotent
    verdict = check_dialable(raw, policy, pending_for_number=pending,
                             recent_attempts_number=attempts, recent_requests_caller=requests,
                             now=now)
    assert isinstance(verdict, Verdict)
    if verdict.allowed:
        assert normalize(raw, policy) == raw  # only a policy-clean E.164 may be dialed
    else:
        assert REASON.fullmatch(verdict.reason) and verdict.prompt and verdict.message
    callee_timezone(raw, policy.center_timezone)
    run_dial_string(raw, trunk, policy.keep_plus)


def run_dial_string(number: str, trunk: str, keep_plus: bool) -> None:
    try:
        dialed = dial_string(number, trunk, keep_plus=keep_plus)
    except NumberRejected:
        assert not E164.fullmatch(number)
        return
    except ConfigError as exc:
        assert exc.key == "center.trunk"
        return
    number_part, _, trunk_part = dialed.removeprefix("PJSIP/").partition("@")
    assert DIAL.fullmatch(dialed), dialed
    assert not FORBIDDEN_IN_DIAL & (set(number_part) | set(trunk_part)), dialed


numbers_target = Target(
    "numbers", "core/numbers.py normalize, check_dialable, dial_string",
    st.tuples(numbers, st.sampled_from(POLICIES), aware_nows, trunks,
              st.tuples(st.integers(-1, 8), st.integers(-1, 8), st.integers(-1, 8))),
    run_numbers)

# ------------------------------------------------------------------ CSV import (core/importing)

CSV_HEADERS = ("number", "name", "skill", "priority", "due", "key", "vip", "Number", "note")
CSV_FILE = ("number,name,skill,priority,due,key,vip\r\n"
            "+12025550123,Ann,sales,5,2026-12-01T09:00:00,k1,yes\r\n"
            "(202) 555-0124,\"Lee, Bo\",support,-3,1796000000,,\r\n")
cells = st.one_of(odd_text, st.sampled_from(("+12025550123", "sales", "5", "-1000", "1e400",
                                              "9" * 400, "2026-12-01T09:00:00+14:00",
                                              "0001-01-01T00:00:00", "nan", "1796000000.5",
                                              "x" * 140_000)))


def _csv(header: list[str], rows: list[list[str]], sep: str) -> str:
    def cell(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\r\n') else v
    return sep.join(",".join(cell(v) for v in line) for line in [header, *rows]) + sep


csv_files = st.one_of(
    st.builds(_csv, st.lists(st.one_of(st.sampled_from(CSV_HEADERS), odd_text), max_size=7),
              st.lists(st.lists(cells, max_size=8), max_size=4), st.sampled_from(("\r\n", "\n"))),
    splice(st.just(CSV_FILE), odd_text), st.text(max_size=80),
).map(lambda text: text.encode("utf-8", "surrogatepass"))
csv_bytes = st.one_of(csv_files, st.binary(max_size=80))
IMPORT_PLAN = ImportPlan(source="fuzz.csv", default_skill="sales", policy=POLICIES[0],
                         timezone="America/New_York")


def csv_rows(data: bytes) -> tuple[list[str], Iterator[Row]]:
    """What ``store.imports.import_csv`` reads of a file before the pool: the header and the
    (line, row or None, why, cells) rows. tests/integration/test_import_fuzz.py runs the real
    function."""
    return read_rows(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig",
                                      errors="replace", newline=""))


def run_csv(case: tuple[bytes, dict[str, str]]) -> None:
    """A whole file through the importer's pure path: read, plan columns, parse each row."""
    data, header_map = case
    try:
        header, rows = csv_rows(data)
        plan = replace(IMPORT_PLAN, columns=plan_columns(header, header_map))
    except (BadRow, ConfigError):
        return
    seen = 0
    for line, row, why, _ in rows:
        seen += 1
        assert seen <= data.count(b"\n") + data.count(b"\r") + 1, "the reader does not advance"
        if row is None:  # a row the CSV reader refused: reported, the import goes on
            assert why, "a row refused without a reason"
            continue
        try:
            task = parse_row(line, row, plan, 1_780_000_000.0)
        except BadRow as exc:
            assert exc.line == line and exc.reason
            continue
        assert E164.fullmatch(task.number) and task.id.startswith("imp-")
        assert task.due_at is None or math.isfinite(task.due_at), task.due_at
        assert task_from_hash(task_to_hash(task)) == task  # storable as parsed


csv_target = Target(
    "csv-import", "store/imports.py CSV reading + core/importing.py plan_columns, parse_row",
    st.tuples(csv_bytes, st.one_of(st.just({}), st.dictionaries(
        st.sampled_from((*FIELDS, "zzz")), st.sampled_from(CSV_HEADERS), max_size=2))),
    run_csv)

# ------------------------------------------------------------------ operator input (cli/)

cli_words = st.one_of(odd_text, st.from_regex(r"-?[0-9]{1,4}(\.[0-9])?[smhdw]", fullmatch=True),
                      st.sampled_from(("sales=5", "sales", "vip=yes", "=", "a=\u00b2", "-1h",
                                       "2026-12-01T09:00:00+14:00", "9" * 400 + "w")))


def run_cli_args(case: tuple[str, tuple[str, ...]]) -> None:
    """Durations, --since times and NAME=VALUE options: a value or ``InvalidInput``."""
    word, words = case
    for parse in (parse_duration, lambda w: parse_since(w, 1_780_000_000.0)):
        with contextlib.suppress(InvalidInput):
            parse(word)
    try:
        skills = _skills(words)
    except InvalidInput:
        return
    assert all(1 <= level <= 9 for level in skills.values()), skills


cli_target = Target("cli-args", "cli/callbacks.py parse_duration, parse_since; cli/agents.py "
                    "skills", st.tuples(cli_words, st.tuples(cli_words, cli_words)), run_cli_args)

TARGETS: dict[str, Target] = {t.name: t for t in (
    dtmf_target,
    Target("say-number", "core/dtmf.py say_number (read-back of a keyed number)",
           st.tuples(numbers, st.sampled_from((None, "US", "DE", "GB"))), run_say_number),
    numbers_target, ari_event_target, ari_frame_target, csv_target, agi_target, ami_target,
    cli_target,
)}
