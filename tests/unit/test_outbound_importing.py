"""CSV rows to outbound tasks (core/importing.py): columns, validation, stable keys; calling
hours across time zones (core/numbers.py) for the numbers imported."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from acdkit.core.dtmf import BusinessHours
from acdkit.core.errors import BadRow, ConfigError
from acdkit.core.importing import ImportPlan, parse_row, plan_columns, row_key
from acdkit.core.numbers import NumberPolicy, check_dialable, within_calling_hours
from acdkit.core.tasks import TaskKind, TaskState

T0 = 1_800_000_000.0
POLICY = NumberPolicy(allowed_countries=frozenset({"US", "GB", "DE"}),
                      dnc=frozenset({"+12125550199"}))
HEADER = ["Phone", "name", "skill", "priority", "due", "segment"]


def plan(**kw: object) -> ImportPlan:
    columns = plan_columns(HEADER, {"number": "Phone"})
    base: dict[str, object] = {"source": "csv:leads.csv", "default_skill": "sales",
                               "policy": POLICY, "timezone": "America/New_York",
                               "columns": columns}
    return ImportPlan(**{**base, **kw})  # type: ignore[arg-type]


def row(**kw: str) -> dict[str, str]:
    return {"Phone": "(212) 555-0142", "name": "Ada", "skill": "", "priority": "5", "due": "",
            "segment": "vip", **kw}


def test_a_good_row_becomes_a_queued_outbound_task() -> None:
    task = parse_row(2, row(), plan(), T0)
    assert (task.kind, task.state, task.number, task.skill) == (
        TaskKind.OUTBOUND, TaskState.QUEUED, "+12125550142", "sales")
    assert (task.name, task.priority, dict(task.attributes)) == ("Ada", 5, {"segment": "vip"})
    assert task.id == row_key("csv:leads.csv", "+12125550142", "sales")


def test_the_key_is_stable_and_ignores_formatting_and_priority() -> None:
    first = parse_row(2, row(), plan(), T0)
    again = parse_row(9, row(Phone="+1 212 555 0142", priority="90"), plan(), T0 + 999)
    assert first.id == again.id
    assert parse_row(2, row(skill="support"), plan(), T0).id != first.id
    assert parse_row(2, row(), plan(source="csv:other.csv"), T0).id != first.id


def test_an_explicit_key_column_wins() -> None:
    cols = plan_columns(["number", "key"])
    one = parse_row(2, {"number": "2125550142", "key": "crm-1"}, plan(columns=cols), T0)
    two = parse_row(3, {"number": "2125550143", "key": "crm-1"}, plan(columns=cols), T0)
    assert one.id == two.id == row_key("csv:leads.csv", "", "", "crm-1")


def test_due_times_schedule_the_task_in_the_center_zone() -> None:
    task = parse_row(2, row(due="2027-01-15T09:30"), plan(), T0)
    assert task.state is TaskState.SCHEDULED
    assert task.due_at == datetime(2027, 1, 15, 14, 30, tzinfo=UTC).timestamp()
    past = parse_row(2, row(due=str(T0 - 10)), plan(), T0)
    assert (past.state, past.due_at) == (TaskState.QUEUED, None)


@pytest.mark.parametrize(("cells", "reason"), [
    ({"Phone": ""}, "number: empty"),
    ({"Phone": "1-900-555-0142"}, "number: premium_rate"),
    ({"Phone": "212555"}, "number: short_code"),
    ({"Phone": "911"}, "number: emergency"),
    ({"Phone": "+33 1 42 68 53 00"}, "number: country_not_allowed"),
    ({"Phone": "2125550199"}, "number: do_not_call"),
    ({"Phone": "212;555"}, "number: bad_characters"),
    ({"priority": "high"}, "priority 'high' is not an integer"),
    ({"priority": "5000"}, "priority 5000 is outside -1000..1000"),
    ({"skill": "sales desk"}, "skill 'sales desk' is not a queue name"),
    ({"due": "tomorrow"}, "due time 'tomorrow' is neither ISO 8601 nor epoch seconds"),
    ({"name": "x\x00y"}, "name holds control characters"),
    ({"segment": "v" * 201}, "segment is longer than 200 characters"),
])
def test_bad_rows_say_why(cells: dict[str, str], reason: str) -> None:
    with pytest.raises(BadRow) as err:
        parse_row(7, row(**cells), plan(), T0)
    assert (err.value.line, err.value.reason) == (7, reason)


def test_short_and_long_rows_are_rejected() -> None:
    with pytest.raises(BadRow, match="wrong number of cells"):
        parse_row(3, {**row(), None: ["extra"]}, plan(), T0)  # type: ignore[dict-item]
    with pytest.raises(BadRow, match="wrong number of cells"):
        parse_row(3, {**row(), "segment": None}, plan(), T0)  # type: ignore[dict-item]


def test_columns_need_a_number_and_known_fields() -> None:
    with pytest.raises(BadRow, match="no column 'number'"):
        plan_columns(["name"])
    with pytest.raises(BadRow, match="twice"):
        plan_columns(["number", "number"])
    with pytest.raises(ConfigError):
        plan_columns(["number"], {"phone": "x"})
    assert plan_columns(["Number", "Name"]).by_field["name"] == "Name"


@pytest.mark.parametrize(("number", "utc_hour", "inside"), [
    ("+12125550142", 13, True),    # New York 08:00 (EST)
    ("+12125550142", 12, False),   # New York 07:00
    ("+13105550142", 15, False),   # Los Angeles 07:00 (PST)
    ("+13105550142", 16, True),    # Los Angeles 08:00
    ("+442079460000", 8, True),    # London 08:00 (GMT)
    ("+493012345678", 20, False),  # Berlin 21:00 (CET): the window closed
    ("+493012345678", 19, True),
])
def test_calling_hours_are_the_callees(number: str, utc_hour: int, inside: bool) -> None:
    policy = NumberPolicy(allowed_countries=frozenset({"US", "GB", "DE"}),
                          calling_hours=BusinessHours.parse("mon-sun 08:00-21:00", "x"))
    when = datetime(2027, 1, 15, utc_hour, 0, tzinfo=UTC)
    assert within_calling_hours(number, policy, when) is inside
    verdict = check_dialable(number, policy, pending_for_number=0, recent_attempts_number=0,
                             recent_requests_caller=0, now=when)
    assert verdict.allowed is inside


def test_the_store_list_and_the_daily_limit_refuse_before_any_dial() -> None:
    when = datetime(2027, 1, 15, 15, 0, tzinfo=UTC)
    listed = check_dialable("+12125550142", POLICY, pending_for_number=0,
                            recent_attempts_number=0, recent_requests_caller=0, now=when,
                            on_dnc_list=True)
    assert (listed.allowed, listed.reason) == (False, "do_not_call")
    limited = check_dialable("+12125550142", POLICY, pending_for_number=0,
                             recent_attempts_number=POLICY.max_attempts_per_number,
                             recent_requests_caller=0, now=when)
    assert (limited.allowed, limited.reason) == (False, "rate_limited_number")
