"""The dialing policy: which numbers acdkit may dial, and when (invariant 5 of
docs/architecture.md §4).

Every outside number goes through ``normalize`` (shape, country, prefix, number type,
do-not-call) before it is stored, and through ``check_dialable`` (pending callbacks, rate
limits, calling hours) before it is dialed; only then does ``dial_string`` build a dial
string. The store counts attempts and requests; the policy decides from the counts passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import PhoneNumberType as Type
from phonenumbers import timezone as pn_timezone

from acdkit.core.dtmf import BusinessHours
from acdkit.core.errors import ConfigError, NumberRejected

# Refused by default: the callee side costs extra or is no person to talk to.
# PREMIUM_RATE, SHARED_COST: toll fraud and surcharges. PERSONAL_NUMBER (UK 070 "follow-me"):
# premium-priced, a classic fraud vector. UAN: company access numbers, often surcharged, never
# a customer's own line. PAGER, VOICEMAIL: nobody answers. VOIP and TOLL_FREE stay allowed:
# many customers' own numbers are VoIP, and toll-free costs the caller nothing.
DEFAULT_DENIED_TYPES = frozenset(
    {Type.PREMIUM_RATE, Type.SHARED_COST, Type.PERSONAL_NUMBER, Type.UAN, Type.PAGER,
     Type.VOICEMAIL}
)

# What the caller hears for each refusal: a prompt of asterisk/prompts.tsv and its words.
_SPOKEN = {
    "refused-invalid": "Sorry, that number is not valid.",
    "refused-premium": "Sorry, we cannot call premium rate numbers.",
    "refused-foreign": "Sorry, we cannot call numbers in that country.",
    "refused-blocked": "Sorry, we cannot call that number.",
    "refused-limit": "Sorry, too many call backs are already booked for that number.",
    "refused-time": "Sorry, we cannot call you back at that time.",
}
_PROMPT_OF = {
    **dict.fromkeys(("empty", "malformed", "too_long", "bad_characters", "invalid"),
                    "refused-invalid"),
    "premium_rate": "refused-premium",
    "country_not_allowed": "refused-foreign",
    **dict.fromkeys(("too_many_pending", "rate_limited_number", "rate_limited_caller"),
                    "refused-limit"),
    "outside_calling_hours": "refused-time",
}  # every other reason (emergency, short_code, do_not_call, other types) is refused-blocked

_SEPARATORS = frozenset(" -.()")
_DIGITS = frozenset("0123456789")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_TRUNK = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# None of these may come from outside into a dial string (docs/architecture.md §4, invariant 5).
FORBIDDEN_IN_DIAL = frozenset("&,/@^\n\r\t ;|'\"\\")
_MAX_INPUT = 40
# 08:00-21:00 every day in the callee's zone: the US TCPA window, within most countries' rules.
DEFAULT_CALLING_HOURS = BusinessHours.parse("mon-sun 08:00-21:00", "numbers.calling_hours")


@dataclass(frozen=True)
class NumberPolicy:
    """The center's dialing policy. Counts are compared with ``>=``: a limit of 3 allows 3."""

    default_region: str = "US"  # region of numbers entered without a country code
    center_timezone: str = "UTC"  # fallback when a number's zone is unknown
    allowed_countries: frozenset[str] = frozenset()  # region codes; empty = default_region only
    allowed_prefixes: tuple[str, ...] = ()  # E.164 prefixes ("+1212"); empty = any
    denied_types: frozenset[int] = DEFAULT_DENIED_TYPES
    dnc: frozenset[str] = frozenset()  # do-not-call list, E.164 (normalise entries on load)
    max_pending_per_number: int = 1  # callbacks waiting for one number at a time
    max_attempts_per_number: int = 6  # dial attempts to one number per number_window
    number_window: float = 86_400.0  # seconds the store counts attempts over
    max_requests_per_caller: int = 5  # callback requests from one calling number per window
    caller_window: float = 3_600.0
    calling_hours: BusinessHours = DEFAULT_CALLING_HOURS  # in the callee's time zone
    keep_plus: bool = False  # dial "+4930..." instead of "4930..." (per trunk provider)


@dataclass(frozen=True)
class Verdict:
    """Whether a number may be dialed now. A refusal carries its ``reason`` code (for the
    audit), the ``prompt`` to play and its words (``message``); ``not_before`` is set when the
    only obstacle is calling hours (a postponement)."""

    allowed: bool
    reason: str = ""
    message: str = ""
    prompt: str = ""
    not_before: datetime | None = None

    @property
    def postponed(self) -> bool:
        return self.not_before is not None

    @classmethod
    def refuse(cls, reason: str, not_before: datetime | None = None) -> Verdict:
        """A refusal for ``reason`` with its prompt and plain words."""
        return cls(False, reason, explain(reason), prompt_for(reason), not_before)


def prompt_for(reason: str) -> str:
    """The media URI (``sound:acdkit/refused-...``) that tells the caller about ``reason``."""
    return f"sound:acdkit/{_PROMPT_OF.get(reason, 'refused-blocked')}"


def explain(reason: str) -> str:
    """The plain words of ``prompt_for(reason)``: what the caller hears, for logs and the CLI."""
    return _SPOKEN[_PROMPT_OF.get(reason, "refused-blocked")]


def normalize(raw: str, policy: NumberPolicy) -> str:
    """Return ``raw`` (typed, keyed or imported) as E.164, or raise ``NumberRejected``.

    Takes digits, one leading ``+`` and the separators `` -.()``. Reasons: ``empty``,
    ``too_long``, ``bad_characters`` (``*``, ``#``, letters, newlines, ...), ``malformed``,
    ``emergency``, ``short_code``, ``invalid``, ``country_not_allowed``, ``prefix_not_allowed``,
    the denied type in lower case (``premium_rate``, ``shared_cost``, ``uan``, ...),
    ``do_not_call``.
    """
    found = _normalized(raw, policy)
    if isinstance(found, NumberRejected):
        raise NumberRejected(raw, found.reason, found.detail)  # a new one: fresh traceback
    return found


# A pure function of its arguments, kept for the last 4,096 numbers, refusals included: a
# call asks for its caller's number more than once (the caller's own items, then the
# follow-up it drops), and customers call again.
@lru_cache(maxsize=4096)
def _normalized(raw: str, policy: NumberPolicy) -> str | NumberRejected:
    try:
        return _normalize(raw, policy)
    except NumberRejected as refused:
        return refused.with_traceback(None)  # keeps no frames alive


def _normalize(raw: str, policy: NumberPolicy) -> str:
    text = raw.strip(" ")
    if not text:
        raise NumberRejected(raw, "empty")
    if len(text) > _MAX_INPUT:
        raise NumberRejected(raw, "too_long")
    bad = set(text) - _DIGITS - _SEPARATORS - {"+"}
    if bad:
        raise NumberRejected(raw, "bad_characters", "".join(sorted(bad)))
    digits = "".join(c for c in text if c in _DIGITS)
    if "+" in text[1:] or not digits:
        raise NumberRejected(raw, "malformed")
    international = text.startswith("+")
    if not international and phonenumbers.is_emergency_number(digits, policy.default_region):
        raise NumberRejected(raw, "emergency")
    try:
        parsed = phonenumbers.parse(text, policy.default_region)
    except phonenumbers.NumberParseException as exc:
        too_long = exc.error_type == phonenumbers.NumberParseException.TOO_LONG
        raise NumberRejected(raw, "too_long" if too_long else "malformed") from None
    e164 = _check_parsed(raw, digits, international, parsed, policy)
    if e164 in policy.dnc:
        raise NumberRejected(raw, "do_not_call")
    return e164


def _check_parsed(raw: str, digits: str, international: bool,
                  parsed: phonenumbers.PhoneNumber, policy: NumberPolicy) -> str:
    nsn = phonenumbers.national_significant_number(parsed)
    home = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    region = phonenumbers.region_code_for_number(parsed) or home
    if phonenumbers.is_emergency_number(nsn, region):
        raise NumberRejected(raw, "emergency")
    if len(str(parsed.country_code)) + len(nsn) > 15:  # E.164's limit
        raise NumberRejected(raw, "too_long")
    if not phonenumbers.is_valid_number(parsed):
        local = not international
        if local and phonenumbers.connects_to_emergency_number(digits, policy.default_region):
            raise NumberRejected(raw, "emergency", "starts with an emergency number")
        short = len(nsn) <= 6 or phonenumbers.is_possible_short_number_for_region(parsed, region)
        raise NumberRejected(raw, "short_code" if short else "invalid")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not _E164.fullmatch(e164):  # belt and braces: phonenumbers formatted something odd
        raise NumberRejected(raw, "invalid")
    if region not in (policy.allowed_countries or {policy.default_region}):
        raise NumberRejected(raw, "country_not_allowed", region)
    if policy.allowed_prefixes and not e164.startswith(policy.allowed_prefixes):
        raise NumberRejected(raw, "prefix_not_allowed")
    kind = phonenumbers.number_type(parsed)
    if kind in policy.denied_types:
        raise NumberRejected(raw, Type.to_string(kind).lower() or "denied_type")
    return e164


def check_dialable(
    e164: str,
    policy: NumberPolicy,
    *,
    pending_for_number: int,
    recent_attempts_number: int,
    recent_requests_caller: int,
    now: datetime,
    on_dnc_list: bool = False,
) -> Verdict:
    """Decide whether ``e164`` may be dialed (or a callback to it accepted) at aware ``now``.

    Counts come from the store, not counting the request being decided: callbacks already
    waiting for the number, attempts to it within ``policy.number_window``, requests from the
    calling number within ``policy.caller_window`` (pass 0 for a count that does not apply).
    ``on_dnc_list``: the number is on the do-not-call list kept in the store (``do_not_call``).
    Returns a refusing ``Verdict`` for any ``normalize`` reason (a non-E.164 string is
    ``malformed``), ``too_many_pending``, ``rate_limited_number``, ``rate_limited_caller``, and
    a postponing one (``outside_calling_hours``, ``not_before`` set). Raises nothing else.
    """
    if not _E164.fullmatch(e164):
        return Verdict.refuse("malformed")
    try:
        normalize(e164, policy)
    except NumberRejected as exc:
        return Verdict.refuse(exc.reason)
    if on_dnc_list:
        return Verdict.refuse("do_not_call")
    for reason, count, limit in (
        ("too_many_pending", pending_for_number, policy.max_pending_per_number),
        ("rate_limited_number", recent_attempts_number, policy.max_attempts_per_number),
        ("rate_limited_caller", recent_requests_caller, policy.max_requests_per_caller),
    ):
        if count >= limit:
            return Verdict.refuse(reason)
    if not within_calling_hours(e164, policy, now):
        return Verdict.refuse("outside_calling_hours", next_calling_time(e164, policy, now))
    return Verdict(True)


def callee_timezone(e164: str, center_timezone: str = "UTC") -> ZoneInfo:
    """The callee's time zone from ``phonenumbers.timezone``.

    A number spanning several zones gets the center's zone when it is one of them (the
    likeliest, and never a far-off first entry such as America/Adak), else the first. Falls
    back to ``center_timezone`` for unknown or unparsable numbers.
    """
    try:
        zones = pn_timezone.time_zones_for_number(phonenumbers.parse(e164))
    except phonenumbers.NumberParseException:
        zones = ()
    known = [z for z in zones if z != pn_timezone.UNKNOWN_TIMEZONE]
    for name in ([center_timezone] if center_timezone in known else known):
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo(center_timezone)


def _callee_now(e164: str, policy: NumberPolicy, now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(callee_timezone(e164, policy.center_timezone))


def within_calling_hours(e164: str, policy: NumberPolicy, now: datetime) -> bool:
    """True when aware ``now`` is inside ``policy.calling_hours`` in the callee's zone;
    raises ``ValueError`` for a naive ``now``."""
    return policy.calling_hours.is_open(_callee_now(e164, policy, now))


def next_calling_time(e164: str, policy: NumberPolicy, now: datetime) -> datetime:
    """The first instant at or after aware ``now`` inside calling hours, in the callee's zone.
    Raises ``ConfigError`` when the calling hours have no window at all."""
    found = policy.calling_hours.next_open(_callee_now(e164, policy, now))
    if found is None:
        raise ConfigError("numbers.calling_hours", "no calling window on any day")
    return found


def dial_string(e164: str, trunk: str, *, keep_plus: bool = False) -> str:
    """Build ``PJSIP/<digits>@<trunk>`` from an E.164 number that passed the policy.

    Raises ``NumberRejected`` (``malformed``) unless ``e164`` is exactly ``+`` and 2–15 digits,
    and ``ConfigError`` for a trunk name outside ``[A-Za-z0-9_.-]``; so no character of
    ``FORBIDDEN_IN_DIAL`` can reach the dial string from either side.
    """
    if not _E164.fullmatch(e164):
        raise NumberRejected(e164, "malformed", "not E.164")
    if not _TRUNK.fullmatch(trunk):
        raise ConfigError("center.trunk", f"{trunk!r} is not a PJSIP endpoint name")
    number = e164 if keep_plus else e164[1:]
    if FORBIDDEN_IN_DIAL & (set(number) | set(trunk)):  # unreachable: belt and braces
        raise NumberRejected(e164, "bad_characters")
    return f"PJSIP/{number}@{trunk}"
