"""Ratings in the core: scores, categories, who may rate, shrunk means, ranking."""

from __future__ import annotations

import pytest

from acdkit.core.agents import Agent, AgentState
from acdkit.core.errors import ConfigError, InvalidInput, NotAuthorized, NotYourRating
from acdkit.core.ratings import (
    Direction,
    Interaction,
    Shrinkage,
    authorize,
    best_first,
    check_scores,
    parse_categories,
    score_key,
    spoken,
    summarize,
)
from acdkit.core.routing import PriorityRules, eligible, points
from acdkit.core.tasks import Task, TaskKind

CATS = ("attitude", "expertise", "availability")
SERVED = Interaction("t1", "agent2", "+15550001", "sales", 100.0)


def test_categories_come_from_a_list_or_a_comma_separated_string() -> None:
    assert parse_categories("Attitude, expertise ,availability") == CATS
    assert parse_categories(["speed"]) == ("speed",)


@pytest.mark.parametrize("bad", ["", "a,a", "overall", "bad name", ",".join("abcdefghij")])
def test_bad_categories_are_a_config_error_naming_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"ratings\.categories"):
        parse_categories(bad)


def test_scores_must_be_known_categories_from_1_to_5() -> None:
    assert check_scores({"attitude": 5, "expertise": 1}, CATS) == {"attitude": 5, "expertise": 1}
    for scores, message in (({"speed": 3}, "unknown rating category"), ({"attitude": 6}, "1 to 5"),
                            ({"attitude": 0}, "1 to 5"), ({"attitude": True}, "1 to 5"),
                            ({}, "at least one")):
        with pytest.raises(InvalidInput, match=message):
            check_scores(scores, CATS)  # type: ignore[arg-type]


def test_the_customer_rates_the_agent_and_the_agent_the_customer() -> None:
    assert authorize(SERVED, Direction.OF_AGENT, "+15550001") == "agent2"
    assert authorize(SERVED, Direction.OF_CUSTOMER, "agent2") == "+15550001"


@pytest.mark.parametrize(("direction", "rater"), [
    (Direction.OF_AGENT, "+15559999"),  # another customer
    (Direction.OF_AGENT, "agent2"),  # the agent cannot rate itself as the customer
    (Direction.OF_CUSTOMER, "agent1"),  # another agent
])
def test_nobody_else_may_rate_an_interaction(direction: Direction, rater: str) -> None:
    with pytest.raises(NotYourRating, match="only that"):
        authorize(SERVED, direction, rater)


def test_an_anonymous_caller_cannot_rate() -> None:
    anonymous = Interaction("t2", "agent2", "")
    with pytest.raises(NotAuthorized, match="anonymous"):
        authorize(anonymous, Direction.OF_AGENT, "")


def test_the_shrunk_mean_pulls_few_ratings_towards_the_prior() -> None:
    prior = Shrinkage(mean=3.0, weight=5.0)
    assert prior.mean_of(5.0, 1) == pytest.approx(20 / 6)  # one 5: 3.33, not 5
    assert prior.mean_of(4.5 * 300, 300) == pytest.approx((15 + 1350) / 305)
    assert prior.mean_of(0.0, 0) is None
    assert Shrinkage(weight=0).mean_of(5.0, 1) == 5.0  # weight 0: the raw mean


def test_a_bad_prior_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="prior_mean"):
        Shrinkage(mean=7)
    with pytest.raises(ConfigError, match="prior_weight"):
        Shrinkage(weight=-1)


def test_one_five_star_rating_ranks_below_300_good_ones() -> None:
    prior = Shrinkage()
    new = summarize("new", {"ratings": "1", "n:*": "3", "sum:*": "15"}, CATS, prior)
    veteran = summarize("vet", {"ratings": "300", "n:*": "900", "sum:*": str(900 * 4.4)},
                        CATS, prior)
    unrated = summarize("zero", {}, CATS, prior)
    assert new.overall.mean == 5.0 and veteran.overall.mean == pytest.approx(4.4)
    assert new.overall.shrunk == pytest.approx(20 / 6)  # shrunk per rating, not per score
    assert veteran.overall.shrunk == pytest.approx((15 + 300 * 4.4) / 305)
    assert [s.ratee for s in best_first([unrated, new, veteran])] == ["vet", "new", "zero"]


def test_a_summary_has_counts_and_means_per_category() -> None:
    raw = {"ratings": "2", "n:attitude": "2", "sum:attitude": "9", "n:*": "3", "sum:*": "12"}
    summary = summarize("a1", raw, CATS, Shrinkage(weight=0))
    assert summary.ratings == 2
    assert summary.categories["attitude"].count == 2
    assert summary.categories["attitude"].mean == 4.5
    assert summary.categories["expertise"].count == 0
    assert summary.categories["expertise"].shrunk is None
    assert summary.overall.shrunk == 4.0


@pytest.mark.parametrize(("value", "digits"), [(4.84, (4, 8)), (3.0, (3, 0)), (4.96, (5, 0))])
def test_a_score_is_said_as_two_digits(value: float, digits: tuple[int, int]) -> None:
    assert spoken(value) == digits


@pytest.mark.parametrize(("key", "attempt", "meaning"), [
    ("4", 1, 4), ("1", 2, 1), ("#", 1, None), ("0", 1, None), (None, 1, None),
    ("9", 1, "again"), ("*", 1, "again"), ("9", 2, None),
])
def test_a_survey_key_is_a_score_a_skip_or_one_more_try(key: str | None, attempt: int,
                                                        meaning: int | str | None) -> None:
    assert score_key(key, attempt) == meaning


def _call(**kw: object) -> Task:
    return Task(id="t", kind=TaskKind.CALL, skill="sales", created_at=0.0, enqueued_at=0.0,
                **kw)  # type: ignore[arg-type]


def test_the_customers_rating_and_a_chosen_agent_weigh_in_the_priority() -> None:
    rules = PriorityRules(rating_weight=10.0, preferred_agent_weight=7.0)
    plain = points(_call(), rules)
    assert points(_call(customer_rating=4.5), rules) == plain + 15.0
    assert points(_call(customer_rating=2.0), rules) == plain - 10.0
    assert points(_call(preferred_agent="2", preferred_until=60.0), rules) == plain + 7.0
    off = PriorityRules()  # weights 0: both inputs disabled
    assert points(_call(customer_rating=5.0, preferred_agent="2"), off) == points(_call(), off)


def test_a_chosen_agent_is_waited_for_then_anyone_may_take_the_call() -> None:
    chosen = _call(preferred_agent="2", preferred_until=60.0)
    other, mine = (Agent(id=i, skills={"sales": 5}, state=AgentState.READY) for i in ("1", "2"))
    assert eligible(mine, chosen, 10.0)
    assert not eligible(other, chosen, 10.0)
    assert eligible(other, chosen, 60.0)
