"""Business hours, HHMM entry and read-back (core/dtmf.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from acdkit.core.dtmf import BusinessHours, parse_hhmm, say_number, say_time, say_when
from acdkit.core.errors import BadDtmf, ConfigError, InvalidInput

OFFICE = BusinessHours.parse("mon-fri 08:00-18:00; sat 09:00-12:00")
BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [ZoneInfo(z) for z in ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
                               "Australia/Lord_Howe", "America/St_Johns")]
HOURS = [OFFICE, BusinessHours.parse("mon-sun 00:00-24:00"),
         BusinessHours.parse("mon-fri 08:00-12:00,13:00-17:30; sun 01:30-03:30"),
         BusinessHours.parse("sat-sun 10:00-16:00")]
nows = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2031, 1, 1),
                    timezones=st.just(UTC))
hhmm = st.tuples(st.integers(0, 23), st.integers(0, 59)).map(lambda t: f"{t[0]:02d}{t[1]:02d}")


def test_parse_business_hours() -> None:
    assert OFFICE.days[0] == ((time(8), time(18)),)
    assert OFFICE.days[5] == ((time(9), time(12)),)
    assert OFFICE.days[6] == ()
    wrapped = BusinessHours.parse("FRI-MON 10:00 - 12:00, 08:00-09:00")
    assert [bool(d) for d in wrapped.days] == [True, False, False, False, True, True, True]
    assert wrapped.days[4] == ((time(8), time(9)), (time(10), time(12)))
    allday = BusinessHours.parse("sun 00:00-24:00; mon,wed 09:00-10:00")
    assert allday.is_open(datetime(2026, 3, 8, 23, 59, 59))  # a Sunday
    assert allday.days[2] == ((time(9), time(10)),)


@pytest.mark.parametrize("text", ["", " ; ", "mon", "mon 08:00", "xyz 08:00-09:00",
                                  "mon-xyz 08:00-09:00", "mon 09:00-08:00", "mon 09:00-09:00",
                                  "mon 25:00-26:00", "mon 08:00-24:30", "mon 8:00-9:00",
                                  "mon 24:00-24:00", "mon 08:00-09:00,", "mon 08:60-09:00"])
def test_bad_business_hours_name_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        BusinessHours.parse(text, "center.hours")
    assert caught.value.key == "center.hours"


def test_is_open_and_next_open() -> None:
    friday_evening = datetime(2026, 3, 6, 18, 0, tzinfo=BERLIN)
    assert not OFFICE.is_open(friday_evening)  # windows end before their end time
    assert OFFICE.is_open(friday_evening - timedelta(seconds=1))
    assert OFFICE.next_open(friday_evening) == datetime(2026, 3, 7, 9, 0, tzinfo=BERLIN)
    assert OFFICE.next_open(datetime(2026, 3, 7, 12, 0, tzinfo=BERLIN)) == \
        datetime(2026, 3, 9, 8, 0, tzinfo=BERLIN)
    assert BusinessHours().next_open(friday_evening) is None


def test_parse_hhmm_today_tomorrow_and_next_open_day() -> None:
    now = datetime(2026, 3, 5, 10, 0, tzinfo=BERLIN)  # Thursday 10:00
    got = parse_hhmm("1430", now, BERLIN, business_hours=OFFICE, horizon=timedelta(days=3))
    assert got == datetime(2026, 3, 5, 14, 30, tzinfo=BERLIN)
    got = parse_hhmm("0900", now, BERLIN, business_hours=OFFICE, horizon=timedelta(days=3))
    assert got == datetime(2026, 3, 6, 9, 0, tzinfo=BERLIN)  # past today: tomorrow
    friday = datetime(2026, 3, 6, 17, 0, tzinfo=BERLIN)
    got = parse_hhmm("1500", friday, BERLIN, business_hours=OFFICE, horizon=timedelta(days=4))
    assert got == datetime(2026, 3, 9, 15, 0, tzinfo=BERLIN)  # Saturday closes at 12: Monday
    with pytest.raises(BadDtmf) as caught:
        parse_hhmm("1500", friday, BERLIN, business_hours=OFFICE, horizon=timedelta(days=1))
    assert caught.value.reason == "beyond_horizon"


@pytest.mark.parametrize(("digits", "reason"), [
    ("", "wrong_length"), ("930", "wrong_length"), ("09300", "wrong_length"),
    ("09:3", "not_digits"), ("9*30", "not_digits"), ("093#", "not_digits"), ("٠٩٣٠", "not_digits"),
    (" 930", "not_digits"), ("2400", "bad_hour"), ("9930", "bad_hour"), ("0960", "bad_minute"),
    ("1299", "bad_minute"), ("0300", "outside_hours"), ("1900", "outside_hours"),
])
def test_bad_entries(digits: str, reason: str) -> None:
    now = datetime(2026, 3, 5, 10, 0, tzinfo=BERLIN)
    with pytest.raises(BadDtmf) as caught:
        parse_hhmm(digits, now, BERLIN, business_hours=OFFICE, horizon=timedelta(days=7))
    assert caught.value.reason == reason


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_hhmm("1000", datetime(2026, 3, 5, 10), BERLIN, business_hours=OFFICE,
                   horizon=timedelta(days=1))


@given(hhmm, nows, st.sampled_from(ZONES), st.sampled_from(HOURS),
       st.integers(1, 14 * 24).map(lambda h: timedelta(hours=h)))
def test_hhmm_in_hours_gives_that_time_within_the_horizon(
    digits: str, now: datetime, tz: ZoneInfo, hours: BusinessHours, horizon: timedelta
) -> None:
    at = time(int(digits[:2]), int(digits[2:]))
    try:
        got = parse_hhmm(digits, now, tz, business_hours=hours, horizon=horizon)
    except BadDtmf as exc:
        if exc.reason == "outside_hours":
            assert not hours.open_at(at)
        else:
            assert exc.reason == "beyond_horizon"
            assert first_open_occurrence(at, now, tz, hours) - now > horizon
        return
    assert got.tzinfo is tz
    assert (got.hour, got.minute) == (at.hour, at.minute)
    assert now < got <= now + horizon
    assert hours.is_open(got)
    assert got == first_open_occurrence(at, now, tz, hours)


@given(hhmm, nows, st.sampled_from(ZONES), st.sampled_from(HOURS))
# Open at 02:00 on Sundays only, asked on a Sunday evening in New York: next Sunday's 02:00
# falls in the DST gap (2025-03-09), so the first 02:00 that exists and is open is 13 days
# ahead, and a week's horizon must refuse it, naming that Sunday (found by hypothesis).
@example("0200", datetime(2025, 3, 3, tzinfo=UTC), ZoneInfo("America/New_York"), HOURS[2])
def test_with_a_week_of_horizon_every_open_time_is_accepted(
    digits: str, now: datetime, tz: ZoneInfo, hours: BusinessHours
) -> None:
    """Unless the only open days' time falls in a DST gap within the week."""
    at = time(int(digits[:2]), int(digits[2:]))
    if not hours.open_at(at):
        return
    horizon = timedelta(days=8)
    first = first_open_occurrence(at, now, tz, hours)
    if first - now <= horizon:
        assert parse_hhmm(digits, now, tz, business_hours=hours, horizon=horizon) == first
        return
    with pytest.raises(BadDtmf) as refused:
        parse_hhmm(digits, now, tz, business_hours=hours, horizon=horizon)
    assert refused.value.reason == "beyond_horizon"
    assert first.isoformat() in str(refused.value)


@given(st.text(max_size=8), nows)
def test_any_other_entry_raises_bad_dtmf(digits: str, now: datetime) -> None:
    if re.fullmatch(r"[0-9]{4}", digits, re.ASCII):
        return
    with pytest.raises(BadDtmf):
        parse_hhmm(digits, now, BERLIN, business_hours=HOURS[1], horizon=timedelta(days=2))


def first_open_occurrence(at: time, now: datetime, tz: ZoneInfo, hours: BusinessHours) -> datetime:
    """Brute force: step through the days, keep the first real, future, open occurrence."""
    day = now.astimezone(tz).date()
    for offset in range(30):
        wall = datetime.combine(day + timedelta(days=offset), at)
        real = wall.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
        if real > now and real.time() == at and hours.is_open(real):
            return real
    raise AssertionError("no occurrence")


@pytest.mark.parametrize(("hour", "minute", "tokens"), [
    (14, 30, ["number:2", "number:30", "sound:digits/p-m"]),
    (9, 5, ["number:9", "sound:digits/oh", "number:5", "sound:digits/a-m"]),
    (0, 0, ["number:12", "sound:digits/oclock", "sound:digits/a-m"]),
    (12, 0, ["number:12", "sound:digits/oclock", "sound:digits/p-m"]),
    (23, 59, ["number:11", "number:59", "sound:digits/p-m"]),
])
def test_say_time(hour: int, minute: int, tokens: list[str]) -> None:
    assert say_time(datetime(2026, 3, 5, hour, minute, tzinfo=BERLIN)) == tokens


def test_say_time_24h() -> None:
    assert say_time(datetime(2026, 3, 5, 14, 30), hours24=True) == ["number:14", "number:30"]
    assert say_time(datetime(2026, 3, 5, 8, 0), hours24=True) == ["number:8",
                                                                  "sound:digits/hundred"]


@given(st.datetimes(), st.booleans())
def test_say_time_tokens_are_ari_media(dt: datetime, hours24: bool) -> None:
    tokens = say_time(dt, hours24=hours24)
    assert all(re.fullmatch(r"number:[0-9]{1,2}|sound:digits/[a-z-]+", t) for t in tokens)
    numbers = [int(t[7:]) for t in tokens if t.startswith("number:")]
    assert numbers[0] == (dt.hour if hours24 else (dt.hour % 12 or 12))
    assert numbers[1:] in ([], [dt.minute])


def test_say_when() -> None:
    now = datetime(2026, 3, 5, 10, 0, tzinfo=BERLIN)  # Thursday
    assert say_when(now.replace(hour=15), now)[:2] == ["sound:digits/today", "sound:digits/at"]
    assert say_when(now + timedelta(days=1), now)[0] == "sound:digits/tomorrow"
    assert say_when(now + timedelta(days=4), now)[0] == "sound:digits/day-1"  # Monday
    assert say_when(now + timedelta(days=3), now)[0] == "sound:digits/day-0"  # Sunday


def test_say_number() -> None:
    assert say_number("+12025550123") == ["digits:1", "digits:202", "digits:555", "digits:0123"]
    assert say_number("+12025550123", "US") == ["digits:202", "digits:555", "digits:0123"]
    assert say_number("+4930123456", "DE") == ["digits:030", "digits:123456"]
    assert say_number("+99912345") == ["digits:99912345"]


@pytest.mark.parametrize("bad", ["", "12025550123", "+1202555012x", "+12025550123\n", "+0123"])
def test_say_number_refuses_non_e164(bad: str) -> None:
    with pytest.raises(InvalidInput):
        say_number(bad)


@given(st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True))
def test_say_number_reads_every_digit_in_order(e164: str) -> None:
    tokens = say_number(e164)
    assert all(re.fullmatch(r"digits:[0-9]+", t) for t in tokens)
    assert "".join(t[7:] for t in tokens) == e164[1:]
