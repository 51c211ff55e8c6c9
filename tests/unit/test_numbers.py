"""The dialing policy (core/numbers.py): invariant 5 of docs/architecture.md §4."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from acdkit.core.dtmf import BusinessHours
from acdkit.core.errors import ConfigError, NumberRejected
from acdkit.core.numbers import (
    FORBIDDEN_IN_DIAL,
    NumberPolicy,
    callee_timezone,
    check_dialable,
    dial_string,
    explain,
    next_calling_time,
    normalize,
    prompt_for,
    within_calling_hours,
)

US = NumberPolicy(default_region="US", center_timezone="America/New_York")
DE = NumberPolicy(default_region="DE", center_timezone="Europe/Berlin",
                  allowed_countries=frozenset({"DE", "GB"}))
E164 = re.compile(r"\+[1-9][0-9]{1,14}")
REASONS = {
    "empty", "malformed", "too_long", "bad_characters", "invalid", "country_not_allowed",
    "prefix_not_allowed", "premium_rate", "shared_cost", "personal_number", "uan", "pager",
    "voicemail", "voip", "toll_free", "denied_type", "emergency", "short_code", "do_not_call",
}
NOON_NY = datetime(2026, 3, 4, 17, 0, tzinfo=UTC)  # a Wednesday, 12:00 in New York


def rejected(raw: str, policy: NumberPolicy = US) -> str:
    with pytest.raises(NumberRejected) as caught:
        normalize(raw, policy)
    return caught.value.reason


@pytest.mark.parametrize("raw", ["+12025550123", "+1 202 555 0123", "(202) 555-0123",
                                 "202.555.0123", "2025550123", " 1 202 555 0123 ",
                                 "+1 (202) 555-0123", "011 1 202 555 0123"])
def test_us_numbers_normalise_to_e164(raw: str) -> None:
    assert normalize(raw, US) == "+12025550123"


@pytest.mark.parametrize(("raw", "e164"), [("030 123456", "+4930123456"),
                                           ("0049 30 123456", "+4930123456"),
                                           ("+44 7400 123456", "+447400123456")])
def test_numbers_from_the_default_region_and_allowed_countries(raw: str, e164: str) -> None:
    assert normalize(raw, DE) == e164


@pytest.mark.parametrize(("raw", "policy", "reason"), [
    ("+1 900 555 1234", US, "premium_rate"),
    ("+44 871 234 5678", DE, "premium_rate"),
    ("01805 123456", DE, "shared_cost"),
    ("+44 70 1234 5678", DE, "personal_number"),
    ("+44 300 123 4567", DE, "uan"),
])
def test_denied_types(raw: str, policy: NumberPolicy, reason: str) -> None:
    assert rejected(raw, policy) == reason


def test_denied_types_are_configurable() -> None:
    assert normalize("+18005551234", US) == "+18005551234"  # toll-free allowed by default
    assert rejected("+18005551234", NumberPolicy(denied_types=frozenset({3}))) == "toll_free"


@pytest.mark.parametrize(("raw", "policy"), [
    ("+4930123456", US), ("+33 1 42 68 53 00", DE), ("+1 876 555 1234", US),  # Jamaica, +1
    ("+1 268 464 1234", US), ("00 33 1 42 68 53 00", DE),
])
def test_foreign_numbers_are_refused(raw: str, policy: NumberPolicy) -> None:
    assert rejected(raw, policy) == "country_not_allowed"


def test_allowed_countries_and_prefixes() -> None:
    both = NumberPolicy(allowed_countries=frozenset({"US", "DE"}))
    assert normalize("+4930123456", both) == "+4930123456"
    dc_only = NumberPolicy(allowed_prefixes=("+1202",))
    assert normalize("2025550123", dc_only) == "+12025550123"
    assert rejected("3125550123", dc_only) == "prefix_not_allowed"


@pytest.mark.parametrize(("raw", "policy"), [("911", US), ("112", US), ("112", DE),
                                             ("110", DE), ("+1 911", US), ("9112", US),
                                             ("+49 112", DE)])
def test_emergency_numbers_are_refused(raw: str, policy: NumberPolicy) -> None:
    assert rejected(raw, policy) == "emergency"


@pytest.mark.parametrize(("raw", "policy"), [("611", US), ("411", US), ("+1 611", US),
                                             ("22000", US), ("116117", DE), ("11833", DE)])
def test_short_codes_are_refused(raw: str, policy: NumberPolicy) -> None:
    assert rejected(raw, policy) == "short_code"


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "empty"), ("   ", "empty"),
    ("+", "malformed"), ("++12025550123", "malformed"), ("1202+5550123", "malformed"),
    ("()-.", "malformed"), ("+0123456", "malformed"),
    ("1" * 41, "too_long"), ("2025550123 0000 0000", "too_long"), ("+1202555012345678", "too_long"),
    ("+1 202 555 01234", "invalid"), ("+1 202 555 012", "invalid"),
    ("*67 202 555 0123", "bad_characters"), ("#2025550123", "bad_characters"),
    ("2025550123#", "bad_characters"), ("202555012*", "bad_characters"),
    ("1-800-FLOWERS", "bad_characters"), ("2025550123x12", "bad_characters"),
    ("abc", "bad_characters"), ("٢٠٢٥٥٥٠١٢٣", "bad_characters"),  # Arabic-Indic digits
    ("２０２５５５０１２３", "bad_characters"),  # full-width digits (phonenumbers would take them)
])
def test_malformed_input(raw: str, reason: str) -> None:
    assert rejected(raw) == reason


@pytest.mark.parametrize("raw", [
    "2025550123&Local/100@default", "2025550123,30", "2025550123/n", "2025550123@evil",
    "2025550123^", "2025550123\n", "2025550123\r\nAction: Originate", "+1202555\n0123",
    "2025550123\t", "2025550123;x", "2025550123|x", "'2025550123'", "2025550123 & 100",
    "\n2025550123",
])
def test_injection_characters_are_refused(raw: str) -> None:
    assert rejected(raw) == "bad_characters"


def test_spaces_are_formatting_and_never_reach_the_result() -> None:
    assert normalize("  202 555 0123  ", US) == "+12025550123"


def test_do_not_call() -> None:
    policy = NumberPolicy(dnc=frozenset({"+12025550123"}))
    assert rejected("(202) 555-0123", policy) == "do_not_call"
    assert normalize("2025550124", policy) == "+12025550124"


ALPHABET = "0123456789+ -.()*#&,/@^\n\tabcX٣"


@given(st.one_of(st.text(max_size=50), st.text(alphabet=ALPHABET, max_size=30),
                 st.from_regex(r"\+?[0-9 ()-]{1,20}", fullmatch=True)),
       st.sampled_from([US, DE]))
@example("+1 202 555 0123", US)
@example("2025550123\n", US)
def test_fuzz_any_text_is_e164_or_rejected(raw: str, policy: NumberPolicy) -> None:
    try:
        e164 = normalize(raw, policy)
    except NumberRejected as exc:
        assert exc.reason in REASONS
        return
    assert E164.fullmatch(e164)
    assert not set(e164) & FORBIDDEN_IN_DIAL
    assert normalize(e164, policy) == e164  # idempotent
    assert re.fullmatch(r"PJSIP/[0-9]+@pstn", dial_string(e164, "pstn"))


def test_dial_string() -> None:
    assert dial_string("+12025550123", "pstn") == "PJSIP/12025550123@pstn"
    assert dial_string("+12025550123", "my-trunk.1", keep_plus=True) == \
        "PJSIP/+12025550123@my-trunk.1"


@pytest.mark.parametrize("e164", ["12025550123", "+1202555012x", "+12025550123\n", "",
                                  "+1202555&0123", "+12025550123@evil", "+1 2025550123",
                                  "+1234567890123456", "+0123"])
def test_dial_string_refuses_anything_but_e164(e164: str) -> None:
    with pytest.raises(NumberRejected):
        dial_string(e164, "pstn")


@pytest.mark.parametrize("trunk", ["", "pstn&x", "pstn/x", "a@b", "pstn\n", "a b", "p,1", "a^b"])
def test_dial_string_refuses_odd_trunk_names(trunk: str) -> None:
    with pytest.raises(ConfigError):
        dial_string("+12025550123", trunk)


def dialable(e164: str, policy: NumberPolicy = US, now: datetime = NOON_NY,
             **counts: int):  # type: ignore[no-untyped-def]
    args = {"pending_for_number": 0, "recent_attempts_number": 0, "recent_requests_caller": 0}
    return check_dialable(e164, policy, now=now, **{**args, **counts})


def test_check_dialable_allows_a_good_number_in_hours() -> None:
    verdict = dialable("+12025550123")
    assert verdict.allowed and not verdict.postponed and verdict.reason == ""


@pytest.mark.parametrize(("counts", "reason"), [
    ({"pending_for_number": 1}, "too_many_pending"),
    ({"recent_attempts_number": 6}, "rate_limited_number"),
    ({"recent_requests_caller": 5}, "rate_limited_caller"),
])
def test_check_dialable_limits(counts: dict[str, int], reason: str) -> None:
    verdict = dialable("+12025550123", **counts)
    assert (verdict.allowed, verdict.reason) == (False, reason)
    assert verdict.message and verdict.prompt == "sound:acdkit/refused-limit"
    assert dialable("+12025550123", **{k: v - 1 for k, v in counts.items()}).allowed


@pytest.mark.parametrize(("e164", "reason"), [("+19005551234", "premium_rate"),
                                              ("+4930123456", "country_not_allowed"),
                                              ("2025550123", "malformed"),
                                              ("+12025550123\n", "malformed"),
                                              ("+1911", "emergency")])
def test_check_dialable_refuses_what_normalize_refuses(e164: str, reason: str) -> None:
    verdict = dialable(e164)
    assert (verdict.allowed, verdict.reason) == (False, reason)
    assert verdict.message == explain(reason)


def test_check_dialable_postpones_outside_calling_hours() -> None:
    night = datetime(2026, 3, 4, 5, 0, tzinfo=UTC)  # 00:00 in New York
    verdict = dialable("+12025550123", now=night)
    assert (verdict.allowed, verdict.reason, verdict.postponed) == (
        False, "outside_calling_hours", True)
    assert verdict.not_before == datetime(2026, 3, 4, 8, 0, tzinfo=ZoneInfo("America/New_York"))


def test_refusals_are_spoken_with_the_prompts_of_the_lab() -> None:
    tsv = Path(__file__).resolve().parents[2] / "asterisk" / "prompts.tsv"
    assert tsv.exists(), "asterisk/prompts.tsv is missing"
    lines = [ln.split("\t", 1) for ln in tsv.read_text().splitlines() if "\t" in ln]
    words = {name: text for name, text in lines if not name.startswith("#")}
    for reason in [*REASONS, "too_many_pending", "rate_limited_number", "rate_limited_caller",
                   "outside_calling_hours", "unknown-code"]:
        name = prompt_for(reason).removeprefix("sound:acdkit/")
        assert words[name] == explain(reason)
    assert prompt_for("premium_rate") == "sound:acdkit/refused-premium"
    assert explain("premium_rate") == "Sorry, we cannot call premium rate numbers."


@pytest.mark.parametrize(("e164", "center", "zone"), [
    ("+12025550123", "UTC", "America/New_York"),
    ("+13105550123", "America/New_York", "America/Los_Angeles"),
    ("+4930123456", "UTC", "Europe/Berlin"),
    ("+18005551234", "America/Chicago", "America/Chicago"),  # many zones: the center's
    ("+18005551234", "Europe/Berlin", "America/Adak"),  # many zones, center not one: first
    ("+1911", "Europe/Paris", "Europe/Paris"),  # unknown: the center's
    ("not a number", "Asia/Tokyo", "Asia/Tokyo"),
])
def test_callee_timezone(e164: str, center: str, zone: str) -> None:
    assert callee_timezone(e164, center) == ZoneInfo(zone)


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1),
                    timezones=st.just(UTC)),
       st.sampled_from(["+12025550123", "+13105550123", "+4930123456", "+447400123456"]),
       st.sampled_from(["mon-sun 08:00-21:00", "mon-fri 09:00-17:00", "sat 10:00-12:00",
                        "mon-fri 08:00-12:00,14:00-18:00; sun 00:00-24:00"]))
def test_next_calling_time_is_the_first_time_in_hours(
    now: datetime, e164: str, hours: str
) -> None:
    policy = NumberPolicy(allowed_countries=frozenset({"US", "DE", "GB"}),
                          calling_hours=BusinessHours.parse(hours))
    found = next_calling_time(e164, policy, now)
    assert found >= now
    assert found - now <= timedelta(days=7)
    assert within_calling_hours(e164, policy, found)
    assert found.tzinfo == callee_timezone(e164)
    if within_calling_hours(e164, policy, now):
        assert found == now
    else:  # nothing earlier at minute steps is open
        assert not within_calling_hours(e164, policy, found - timedelta(minutes=1))


def test_calling_hours_need_an_aware_now_and_a_window() -> None:
    with pytest.raises(ValueError):
        within_calling_hours("+12025550123", US, datetime(2026, 1, 1, 12))
    with pytest.raises(ConfigError):
        next_calling_time("+12025550123", NumberPolicy(calling_hours=BusinessHours()), NOON_NY)


def test_a_number_asked_again_gets_the_same_answer_from_the_cache() -> None:
    """A call normalizes its caller's number more than once; the second answer is kept,
    refusals included, and a kept refusal is raised as a new exception each time."""
    policy = NumberPolicy()
    refusals = []
    for _ in range(2):
        with pytest.raises(NumberRejected) as refused:
            normalize("71234", policy)
        refusals.append(refused.value)
    assert [r.reason for r in refusals] == ["short_code", "short_code"]
    assert refusals[0] is not refusals[1] and refusals[1].number == "71234"
    assert normalize("(212) 555-0123", policy) == normalize("(212) 555-0123", policy) \
        == "+12125550123"
    # Another policy is another answer, not the kept one.
    assert normalize("2125550123", NumberPolicy(default_region="US")) == "+12125550123"
    with pytest.raises(NumberRejected, match="country_not_allowed"):
        normalize("+12125550123", NumberPolicy(default_region="DE"))
