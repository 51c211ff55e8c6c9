"""What callers and agents hear about ratings: the media lists the flows play."""

from __future__ import annotations

from acdkit.ari.ratings_line import _announce
from acdkit.ari.survey import whisper_rating
from acdkit.core.prompts import agent_menu, question, say_score
from acdkit.core.ratings import Direction, Interaction, Rating, Score, Summary
from acdkit.core.tasks import Task, TaskKind


def test_a_score_is_said_as_rated_x_point_y() -> None:
    assert say_score(4.84) == ["sound:acdkit/rate-rated", "digits:4", "sound:acdkit/rate-point",
                               "digits:8"]
    assert say_score(None) == ["sound:acdkit/rate-not-rated"]


def test_each_category_has_its_question() -> None:
    assert question("attitude", 1) == ["sound:acdkit/rate-q-attitude"]
    assert question("overall", 1) == ["sound:acdkit/rate-customer"]
    assert question("speed", 4) == ["sound:acdkit/rate-question", "digits:4",
                                    "sound:acdkit/rate-scale"]


def test_the_choice_menu_names_each_agent_its_rating_and_its_key() -> None:
    rated = Summary("3", 300, overall=Score(900, 4.5, 4.48))
    new = Summary("12", 0)
    media = agent_menu([rated, new])
    assert media[0] == "sound:acdkit/rate-choose-intro"
    assert media[1:9] == ["sound:acdkit/rate-agent", "digits:3", "sound:acdkit/rate-rated",
                          "digits:4", "sound:acdkit/rate-point", "digits:5",
                          "sound:acdkit/rate-press", "digits:1"]
    assert media[9:13] == ["sound:acdkit/rate-agent", "digits:12", "sound:acdkit/rate-not-rated",
                           "sound:acdkit/rate-press"]
    assert media[-2:] == ["digits:2", "sound:acdkit/rate-choose-any"]


def test_the_ratings_line_announces_the_call_and_the_callers_own_rating() -> None:
    served = Interaction("t1", "2", "4930123456")
    mine = Rating("t1", Direction.OF_AGENT, "4930123456", "2", {"attitude": 4, "expertise": 5})
    media = _announce(served, Direction.OF_AGENT, mine)
    assert media[:3] == ["sound:acdkit/rate-line-item", "sound:acdkit/rate-agent", "digits:2"]
    assert media[3:8] == ["sound:acdkit/rate-your-rating", "digits:4", "sound:acdkit/rate-point",
                          "digits:5", "sound:acdkit/rate-line-options"]
    as_agent = _announce(served, Direction.OF_CUSTOMER, None)
    assert as_agent[1:4] == ["sound:acdkit/rate-line-customer", "digits:3456",
                             "sound:acdkit/rate-not-rated"]


def test_the_whisper_says_the_customers_rating_when_it_has_one() -> None:
    task = Task(id="t", kind=TaskKind.CALL, skill="sales", created_at=0, enqueued_at=0)
    assert whisper_rating(task) == []
    rated = Task(id="t", kind=TaskKind.CALL, skill="sales", created_at=0, enqueued_at=0,
                 customer_rating=2.5)
    assert whisper_rating(rated)[:2] == ["sound:acdkit/rate-customer-is", "sound:acdkit/rate-rated"]
