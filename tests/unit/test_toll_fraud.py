"""Toll fraud: numbers a caller or a file could slip in to make the center pay or dial what it
must not (premium, foreign, short codes, emergency, injected dial-string syntax) are refused
with a typed reason before anything is dialed (invariant 5 of docs/architecture.md §4)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import phonenumbers
import pytest
from phonenumbers import PhoneNumberType as Type

from acdkit.ari.client import AriClient
from acdkit.ari.control import AriControl
from acdkit.core.errors import InvalidInput, NumberRejected
from acdkit.core.numbers import (
    DEFAULT_DENIED_TYPES,
    NumberPolicy,
    Verdict,
    check_dialable,
    dial_string,
    normalize,
)
from acdkit.core.tasks import Task, TaskKind

US = NumberPolicy(default_region="US", center_timezone="America/New_York")
NOON_NY = datetime(2026, 3, 4, 17, 0, tzinfo=UTC)
INJECTION = ["&", "/", ",", "@", "^", "\n", "\r", "\t", ";", "|", "'", '"', "\\", "\x00"]


def reason(raw: str, policy: NumberPolicy = US) -> str:
    with pytest.raises(NumberRejected) as caught:
        normalize(raw, policy)
    return caught.value.reason


def verdict(number: str, policy: NumberPolicy = US) -> Verdict:
    return check_dialable(number, policy, pending_for_number=0, recent_attempts_number=0,
                          recent_requests_caller=0, now=NOON_NY)


def denied_examples() -> list[tuple[str, str, str]]:
    """(region, E.164, reason) for phonenumbers' example number of every denied type."""
    found = []
    for region in ("US", "GB", "DE", "FR", "IT", "ES", "AU"):
        for kind in sorted(DEFAULT_DENIED_TYPES):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                found.append((region, e164, Type.to_string(kind).lower()))
    return found


@pytest.mark.parametrize(("region", "e164", "kind"), denied_examples())
def test_premium_and_other_costly_types_are_refused(region: str, e164: str, kind: str) -> None:
    policy = NumberPolicy(default_region=region)
    assert reason(e164, policy) == kind
    refused = verdict(e164, policy)
    assert (refused.allowed, refused.reason) == (False, kind)
    assert refused.prompt.startswith("sound:acdkit/refused-") and refused.message


def test_the_examples_cover_premium_rate_in_several_countries() -> None:
    premium = {region for region, _, kind in denied_examples() if kind == "premium_rate"}
    assert premium >= {"US", "GB", "DE", "FR"}


@pytest.mark.parametrize("raw", [
    "+44 20 7946 0000",  # London: a foreign country for a US center
    "011 44 20 7946 0000",  # the same through the US international prefix
    "+1 876 555 0123",  # Jamaica: inside +1 but another country ("one ring" scams)
    "+1 809 555 0123",  # Dominican Republic, also +1
    "+53 7 123 4567",  # Cuba
    "+979 123456789",  # International Premium Rate Service
    "+881 612345678",  # satellite (Global Mobile Satellite System)
])
def test_foreign_numbers_are_refused_unless_allowed(raw: str) -> None:
    assert reason(raw) in {"country_not_allowed", "invalid"}


def test_an_allowed_country_still_refuses_its_premium_numbers() -> None:
    policy = NumberPolicy(default_region="US", allowed_countries=frozenset({"US", "GB"}))
    assert normalize("+44 20 7946 0000", policy) == "+442079460000"
    assert reason("+44 909 876 5432", policy) == "premium_rate"


@pytest.mark.parametrize(("raw", "region"), [
    ("911", "US"), ("112", "US"), ("9-1-1", "US"), ("(911)", "US"), ("+1 911", "US"),
    ("911 555 0123", "US"), ("999", "GB"), ("112", "GB"), ("+44 999", "US"), ("110", "DE"),
    ("112", "DE"), ("+49 112", "US"), ("000", "AU"),
])
def test_emergency_numbers_are_refused(raw: str, region: str) -> None:
    assert reason(raw, NumberPolicy(default_region=region)) == "emergency"


@pytest.mark.parametrize(("raw", "region"), [
    ("411", "US"), ("611", "US"), ("1911", "US"), ("22000", "US"), ("1234", "US"),
    ("116123", "DE"),
])
def test_short_codes_are_refused(raw: str, region: str) -> None:
    assert reason(raw, NumberPolicy(default_region=region)) == "short_code"


@pytest.mark.parametrize("char", INJECTION)
@pytest.mark.parametrize("at", [0, 4, 10])
def test_injection_characters_are_refused_everywhere(char: str, at: int) -> None:
    keyed = "2025550123"
    assert reason(keyed[:at] + char + keyed[at:]) == "bad_characters"
    e164 = "+12025550123"
    spliced = e164[:at + 1] + char + e164[at + 1:]
    refused = verdict(spliced)
    assert (refused.allowed, refused.reason) == (False, "malformed")
    with pytest.raises(NumberRejected):
        dial_string(spliced, "pstn")


@pytest.mark.parametrize("raw", [
    "٢٠٢٥٥٥٠١٢٣",  # Arabic-Indic digits: phonenumbers would read them as 2025550123
    "２０２５５５０１２３",  # full-width digits, likewise
    "*67 202 555 0123", "#31#2025550123",  # feature codes
    "+1 (202) 555-0123 x12",  # an extension
    "2025550123,,1234",  # pauses and DTMF after the answer
    "PJSIP/2025550123@pstn", "2025550123@evil.example",
])
def test_digits_other_than_ascii_and_dial_syntax_are_refused(raw: str) -> None:
    assert reason(raw) == "bad_characters"


def test_spaces_are_formatting_only_and_never_reach_a_dial_string() -> None:
    e164 = normalize(" 202 555 0123 ", US)
    assert dial_string(e164, "pstn") == "PJSIP/12025550123@pstn"
    assert verdict("+1 2025550123").reason == "malformed"


def test_overlong_input_is_refused() -> None:
    assert reason("1" * 41) == "too_long"
    assert reason("+1 202 555 0123 4567 8901") in {"too_long", "invalid"}


async def test_ari_originate_refuses_a_dial_string_with_injected_syntax() -> None:
    """A dial string with ``&`` (dial two numbers) or ``,`` (options) never reaches ARI: the
    check comes before any request (this client is not even connected)."""
    control = AriControl(AriClient("http://127.0.0.1:9", "acdkit", "x", "acdkit"))
    for endpoint in ("PJSIP/12025550123@pstn&PJSIP/19005550123@pstn",
                     "PJSIP/12025550123@pstn,,D(1)", "PJSIP/1202 5550123@pstn",
                     "PJSIP/12025550123@pstn\nAction: Command"):
        with pytest.raises(InvalidInput):
            await control.originate(endpoint, "cb-1")


def test_ami_originate_builds_no_action_for_a_number_that_is_not_e164() -> None:
    from acdkit.ami.originate import DialPlan, originate_action

    plan = DialPlan(trunk="pstn", caller_id="+12125550100")
    good = Task(id="t1", kind=TaskKind.CALLBACK, skill="queue:sales", created_at=0.0,
                enqueued_at=0.0, number="+12025550123")
    assert originate_action(good, "sales", "cb-t1-1", plan)["Channel"] == \
        "PJSIP/12025550123@pstn"
    for bad in ("+12025550123&PJSIP/1900", "911", "+1202555012\n3", "+1 2025550123"):
        with pytest.raises(NumberRejected):
            originate_action(replace(good, number=bad), "sales", "cb-t1-1", plan)
