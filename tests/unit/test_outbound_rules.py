"""Business rules (core/rules.py): matching, actions in order, drop, configuration errors."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from acdkit.core.errors import ConfigError
from acdkit.core.routing import PriorityRules, pool_score
from acdkit.core.rules import Rule, evaluate, rules_from_config
from acdkit.core.tasks import Task, TaskKind

T0 = 1_800_000_000.0


def lead(**kw: object) -> Task:
    base: dict[str, object] = {"id": "t1", "kind": TaskKind.OUTBOUND, "skill": "sales",
                               "created_at": T0, "enqueued_at": T0, "source": "csv:leads.csv",
                               "number": "+12125550142"}
    return Task(**{**base, **kw})  # type: ignore[arg-type]


RULES = rules_from_config([
    {"name": "vip", "attributes": {"segment": "vip"}, "add_priority": 40},
    {"name": "csv-base", "kind": "outbound", "source": "csv:*", "set_priority": 10},
    {"name": "stale", "min_age": 86_400, "add_priority": -5},
    {"name": "senior", "min_attempts": 2, "require": {"team": "senior"}, "min_level": 3},
    {"name": "move", "source": "missed-call", "skill": "support"},
    {"name": "junk", "attributes": {"segment": "junk"}, "drop": True},
    {"name": "after-drop", "add_priority": 1},
])


def test_rules_fire_in_order_and_set_overrides_what_came_before() -> None:
    result = evaluate(lead(attributes=MappingProxyType({"segment": "vip"})), RULES, T0)
    assert result.fired == ("vip", "csv-base", "after-drop")
    assert result.task.priority == 11 and not result.dropped  # set 10 after +40, then +1


def test_age_and_attempts_conditions() -> None:
    old = evaluate(lead(attempts=2), RULES, T0 + 2 * 86_400)
    assert old.fired == ("csv-base", "stale", "senior", "after-drop")
    assert old.task.priority == 6
    assert (dict(old.task.required), old.task.min_level) == ({"team": "senior"}, 3)
    assert evaluate(lead(), RULES, T0 + 60).task.required == {}


def test_a_drop_rule_stops_the_evaluation() -> None:
    result = evaluate(lead(attributes=MappingProxyType({"segment": "junk"})), RULES, T0)
    assert result.dropped and result.dropped_by == "junk"
    assert result.fired == ("csv-base", "junk")


def test_kind_and_source_patterns_restrict_the_match() -> None:
    call = evaluate(lead(kind=TaskKind.CALL, source="missed-call"), RULES, T0)
    assert call.fired == ("move", "after-drop") and call.task.skill == "support"


def test_rule_priority_moves_the_static_score() -> None:
    routing = PriorityRules(business=RULES)
    plain = lead()
    ruled = evaluate(plain, routing.business, T0).task
    assert pool_score(ruled, routing) < pool_score(plain, routing)


@pytest.mark.parametrize(("item", "key"), [
    ({"nme": "x"}, "rules[0].nme"),
    ({"kind": "fax"}, "rules[0]"),
    ({"add_priority": "ten"}, "rules[0]"),
    ({"attributes": ["x"]}, "rules[0]"),
])
def test_bad_rules_name_their_key(item: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        rules_from_config([item])
    assert err.value.key == key


def test_an_empty_rule_matches_everything_and_unnamed_rules_get_a_name() -> None:
    (rule,) = rules_from_config([{}])
    assert rule == Rule("rule1") and rule.matches(lead(), 0.0)
