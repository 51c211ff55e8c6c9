"""Time entry and read-back: business hours, HHMM keyed by a caller, and what to play back.

Read-back returns ARI media URIs (``sound:digits/oclock``, ``number:14``, ``digits:555``) that
the Stasis app plays in order; the sounds named here ship in ``asterisk-core-sounds-en``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

import phonenumbers

from acdkit.core.errors import BadDtmf, ConfigError, InvalidInput

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_END_OF_DAY = time.max  # "24:00" as the end of a window
_HHMM = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")

Window = tuple[time, time]  # [start, end), end == time.max means up to midnight


@dataclass(frozen=True)
class BusinessHours:
    """Opening windows per weekday: ``days[0]`` is Monday, ``days[6]`` Sunday."""

    days: tuple[tuple[Window, ...], ...] = ((),) * 7

    @classmethod
    def parse(cls, text: str, key: str = "business_hours") -> BusinessHours:
        """Parse ``"mon-fri 08:00-12:00,13:00-18:00; sat 09:00-12:00"``.

        Day ranges may wrap (``fri-mon``); ``24:00`` ends a window at midnight. Raises
        ``ConfigError`` naming ``key`` on anything else.
        """
        days: list[list[Window]] = [[] for _ in _DAYS]
        clauses = [c.strip() for c in text.lower().split(";") if c.strip()]
        if not clauses:
            raise ConfigError(key, "no opening windows")
        for clause in clauses:
            spec, _, spans = clause.partition(" ")
            windows = [_window(w, key) for w in "".join(spans.split()).split(",")]
            for day in _day_set(spec, key):
                days[day].extend(windows)
        return cls(tuple(tuple(sorted(w)) for w in days))

    def is_open(self, local: datetime) -> bool:
        """True when the wall-clock time of ``local`` lies in one of its weekday's windows."""
        return _in(self.days[local.weekday()], local.time())

    def open_at(self, at: time) -> bool:
        """True when the time of day ``at`` lies in a window on at least one weekday."""
        return any(_in(windows, at) for windows in self.days)

    def next_open(self, local: datetime) -> datetime | None:
        """The earliest instant at or after ``local`` that is open, in ``local``'s zone.

        Returns ``local`` itself when open, ``None`` when no weekday has a window.
        """
        if self.is_open(local):
            return local
        wall = local.replace(tzinfo=None)
        for offset in range(8):
            day = wall.date() + timedelta(days=offset)
            for start, _ in self.days[day.weekday()]:
                candidate = datetime.combine(day, start)
                if candidate > wall:
                    return _real(candidate, local.tzinfo)
        return None


def _in(windows: tuple[Window, ...], at: time) -> bool:
    return any(start <= at < end or (end == _END_OF_DAY and at >= start) for start, end in windows)


def _real(wall: datetime, tz: tzinfo | None) -> datetime:
    """Attach ``tz`` to a wall time and fold a time that does not exist (DST gap) onto one
    that does."""
    if tz is None:
        return wall
    return wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def _day_set(spec: str, key: str) -> list[int]:
    found: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ConfigError(key, f"unknown day in {spec!r} (use mon..sun)")
        a, b = _DAYS.index(first), _DAYS.index(last or first)
        found.extend((a + i) % 7 for i in range((b - a) % 7 + 1))
    return found


def _window(text: str, key: str) -> Window:
    start_s, _, end_s = text.partition("-")
    start, end = _clock(start_s, key), _clock(end_s, key)
    if start == _END_OF_DAY or (end != _END_OF_DAY and end <= start):
        raise ConfigError(key, f"window {text!r} must start before it ends")
    return start, end


def _clock(text: str, key: str) -> time:
    match = _HHMM.fullmatch(text)
    if not match:
        raise ConfigError(key, f"expected HH:MM, got {text!r}")
    hour, minute = int(match[1]), int(match[2])
    if hour == 24:
        if minute:
            raise ConfigError(key, f"{text!r} is past midnight")
        return _END_OF_DAY
    return time(hour, minute)


def parse_hhmm(
    digits: str,
    now: datetime,
    tz: tzinfo,
    *,
    business_hours: BusinessHours,
    horizon: timedelta,
) -> datetime:
    """Turn four keyed digits ``HHMM`` (24 h) into the next such time in ``tz``.

    Takes the digits, an aware ``now``, the center's zone, its business hours and how far
    ahead a time may lie. Today's ``HH:MM`` if still ahead, else tomorrow's; a day on which
    that time is closed is skipped. Returns an aware datetime in ``tz``. Raises ``BadDtmf``
    with reason ``wrong_length``, ``not_digits``, ``bad_hour``, ``bad_minute``,
    ``outside_hours`` (closed at that time on every day) or ``beyond_horizon``; raises
    ``ValueError`` when ``now`` is naive.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if len(digits) != 4:
        raise BadDtmf("wrong_length", f"{len(digits)} digits, expected 4")
    if not all(c in "0123456789" for c in digits):
        raise BadDtmf("not_digits")
    hour, minute = int(digits[:2]), int(digits[2:])
    if hour > 23:
        raise BadDtmf("bad_hour", digits)
    if minute > 59:
        raise BadDtmf("bad_minute", digits)
    at = time(hour, minute)
    if not business_hours.open_at(at):
        raise BadDtmf("outside_hours", digits)
    today = now.astimezone(tz).date()
    for offset in range(15):  # two weeks: every weekday seen, DST gaps stepped over
        candidate = _real(datetime.combine(today + timedelta(days=offset), at), tz)
        if candidate <= now or candidate.time() != at or not business_hours.is_open(candidate):
            continue  # already past, not there that day (DST gap), or closed that day
        if candidate - now > horizon:
            raise BadDtmf("beyond_horizon", candidate.isoformat())
        return candidate
    raise BadDtmf("outside_hours", digits)  # pragma: no cover - open_at() found a weekday


def say_time(dt: datetime, *, hours24: bool = False) -> list[str]:
    """Media URIs that read back the wall time of ``dt``: ``2:05 pm`` is
    ``number:2``, ``sound:digits/oh``, ``number:5``, ``sound:digits/p-m``; with ``hours24``
    it is ``number:14``, ``sound:digits/oh``, ``number:5``."""
    hour, minute = dt.hour, dt.minute
    spoken = [f"number:{hour if hours24 else (hour % 12 or 12)}"]
    if minute == 0:
        spoken.append("sound:digits/hundred" if hours24 else "sound:digits/oclock")
    else:
        spoken += (["sound:digits/oh"] if minute < 10 else []) + [f"number:{minute}"]
    if not hours24:
        spoken.append("sound:digits/a-m" if hour < 12 else "sound:digits/p-m")
    return spoken


def say_when(dt: datetime, now: datetime, *, hours24: bool = False) -> list[str]:
    """Media URIs for "today / tomorrow / <weekday> at <time>" (``dt`` and ``now`` aware,
    compared in ``dt``'s zone)."""
    days = (dt.date() - now.astimezone(dt.tzinfo).date()).days
    return [_day_sound(dt.date(), days), "sound:digits/at", *say_time(dt, hours24=hours24)]


def _day_sound(day: date, days_ahead: int) -> str:
    if days_ahead == 0:
        return "sound:digits/today"
    if days_ahead == 1:
        return "sound:digits/tomorrow"
    return f"sound:digits/day-{(day.weekday() + 1) % 7}"  # Asterisk counts from Sunday = 0


def say_number(e164: str, region: str | None = None) -> list[str]:
    """Media URIs that read back an E.164 number in its digit groups.

    In ``region`` (the center's) the national form is read (``030 123456``), elsewhere the
    international one without the plus. Raises ``InvalidInput`` when ``e164`` is not E.164.
    """
    if not _E164.fullmatch(e164):
        raise InvalidInput(f"{e164!r} is not an E.164 number")
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return [f"digits:{e164[1:]}"]
    national = region is not None and phonenumbers.region_code_for_number(parsed) == region
    fmt = (phonenumbers.PhoneNumberFormat.NATIONAL if national
           else phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    groups = re.findall(r"[0-9]+", phonenumbers.format_number(parsed, fmt))
    nsn = phonenumbers.national_significant_number(parsed)
    spoken = "".join(groups)
    if not (spoken.endswith(nsn) if national else spoken == e164[1:]):
        return [f"digits:{e164[1:]}"]  # a format that drops or adds digits: read them plainly
    return [f"digits:{group}" for group in groups]
