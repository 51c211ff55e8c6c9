"""Ratings against a real redis-server: authorisation, exact aggregates under concurrency."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from poolkit import RULES, T0

from acdkit.core.errors import InvalidInput, NoSuchInteraction, NoSuchRating, NotYourRating
from acdkit.core.ratings import Direction, Interaction, Shrinkage
from acdkit.store.connection import connect
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore

pytestmark = pytest.mark.integration

CATS = ("attitude", "expertise", "availability")


@pytest.fixture
def store(pool: Pool) -> RatingStore:
    return RatingStore(pool, CATS, Shrinkage(mean=3.0, weight=5.0))


async def served(store: RatingStore, task_id: str, agent: str = "agent1",
                 number: str = "+15550001") -> Interaction:
    done = Interaction(task_id, agent, number, "sales", T0)
    await store.record_served(done)
    return done


async def test_a_customer_rates_the_agent_it_talked_to(store: RatingStore) -> None:
    await served(store, "t1")
    rating = await store.rate(task_id="t1", rater="+15550001", ratee="agent1",
                              scores={"attitude": 5, "expertise": 4}, now=T0 + 1)
    assert rating.direction is Direction.OF_AGENT
    summary = await store.agent_summary("agent1")
    assert summary.ratings == 1
    assert summary.categories["attitude"].count == 1
    assert summary.categories["availability"].count == 0
    assert summary.overall.mean == 4.5
    assert summary.overall.shrunk == pytest.approx((15 + 4.5) / 6)  # one rating of 4.5
    history = await store.pool.audit.history("t1")
    assert history[-1].event == "rating_added"
    assert history[-1].fields["scores"] == "attitude=5,expertise=4"


async def test_changing_and_deleting_a_rating_moves_the_aggregate(store: RatingStore) -> None:
    await served(store, "t1")
    await store.rate(task_id="t1", rater="+15550001", scores={"attitude": 1}, now=T0)
    await store.rate(task_id="t1", rater="+15550001", scores={"attitude": 5, "expertise": 3},
                     now=T0 + 1)
    summary = await store.agent_summary("agent1")
    assert (summary.ratings, summary.overall.count, summary.overall.mean) == (1, 2, 4.0)
    got = await store.get("t1", Direction.OF_AGENT)
    assert got is not None and got.scores == {"attitude": 5, "expertise": 3}
    await store.delete(task_id="t1", rater="+15550001", now=T0 + 2)
    summary = await store.agent_summary("agent1")
    assert (summary.ratings, summary.overall.count, summary.overall.shrunk) == (0, 0, None)
    assert await store.get("t1", Direction.OF_AGENT) is None
    with pytest.raises(NoSuchRating):
        await store.delete(task_id="t1", rater="+15550001", now=T0 + 3)


async def test_the_agent_rates_the_customer_who_gets_a_score(store: RatingStore) -> None:
    await served(store, "t1")
    assert await store.customer_score("+15550001") is None
    await store.rate(task_id="t1", rater="agent1", scores={"overall": 5}, now=T0)
    assert await store.customer_score("+15550001") == pytest.approx(20 / 6)
    with pytest.raises(InvalidInput, match="unknown rating category"):
        await store.rate(task_id="t1", rater="agent1", scores={"attitude": 5}, now=T0)


async def test_an_interaction_that_did_not_happen_cannot_be_rated(store: RatingStore) -> None:
    with pytest.raises(NoSuchInteraction, match="no served interaction"):
        await store.rate(task_id="t404", rater="+15550001", scores={"attitude": 5}, now=T0)
    assert (await store.agent_summary("agent1")).ratings == 0


async def test_nobody_rates_for_someone_else(store: RatingStore) -> None:
    await served(store, "t1")
    await store.rate(task_id="t1", rater="+15550001", scores={"attitude": 2}, now=T0)
    for rater, ratee in (("+15559999", None), ("agent2", None), ("+15550001", "agent2")):
        with pytest.raises(NotYourRating):
            await store.rate(task_id="t1", rater=rater, ratee=ratee, scores={"attitude": 5},
                             now=T0)
    with pytest.raises(NotYourRating):
        await store.delete(task_id="t1", rater="+15559999", now=T0)
    summary = await store.agent_summary("agent1")
    assert (summary.ratings, summary.overall.mean) == (1, 2.0)


async def test_the_served_lists_are_newest_first(store: RatingStore) -> None:
    await store.record_served(Interaction("t1", "agent1", "+15550001", "sales", T0))
    await store.record_served(Interaction("t2", "agent2", "+15550001", "sales", T0 + 5))
    assert [i.task_id for i in await store.served(number="+15550001")] == ["t2", "t1"]
    assert [i.task_id for i in await store.served(agent_id="agent1")] == ["t1"]


async def test_summaries_rank_best_first(store: RatingStore) -> None:
    for n, (agent, score) in enumerate([("agent1", 3), ("agent2", 5), ("agent3", 4)]):
        await served(store, f"t{n}", agent=agent)
        await store.rate(task_id=f"t{n}", rater="+15550001", scores={"attitude": score}, now=T0)
    assert [s.ratee for s in await store.summaries()] == ["agent2", "agent3", "agent1"]


async def test_declines_are_counted_and_audited(store: RatingStore) -> None:
    assert await store.count_decline("agent1", "t1", T0) == 1
    assert await store.count_decline("agent1", "t2", T0) == 2
    assert await store.declines() == {"agent1": 2}
    assert [e.event for e in await store.pool.audit.history("agent1", "agent")] == \
        ["declined", "declined"]


async def test_a_customer_pin_is_kept_as_a_hash_and_can_be_removed(store: RatingStore) -> None:
    assert await store.pin_hash("+15550001") is None
    await store.set_pin("+15550001", "pbkdf2$1$00$00")
    assert await store.pin_hash("+15550001") == "pbkdf2$1$00$00"
    assert await store.pin_hash("anonymous") is None  # no number: no PIN, no error
    await store.set_pin("+15550001", None)
    assert await store.pin_hash("+15550001") is None
    with pytest.raises(InvalidInput, match="1-20 digits"):
        await store.set_pin("12ab", "pbkdf2$1$00$00")


async def test_concurrent_raters_keep_the_aggregates_exact(redis_url: str) -> None:
    """Many clients add, change and delete ratings of the same agents at once; the aggregates
    equal a recount of the stored ratings afterwards."""
    clients = [RatingStore(Pool(await connect(redis_url), RULES), CATS) for _ in range(12)]
    tasks = [f"t{i}" for i in range(40)]
    for i, task_id in enumerate(tasks):
        await clients[0].record_served(Interaction(task_id, f"agent{i % 3}", f"+1555000{i % 7}"))
    rng = random.Random(7)

    async def churn(store: RatingStore) -> None:
        for _ in range(60):
            i = rng.randrange(len(tasks))
            number = f"+1555000{i % 7}"
            if rng.random() < 0.2:
                with contextlib.suppress(NoSuchRating):
                    await store.delete(task_id=tasks[i], rater=number, now=T0)
            else:
                scores = {c: rng.randint(1, 5) for c in rng.sample(CATS, rng.randint(1, 3))}
                await store.rate(task_id=tasks[i], rater=number, scores=scores, now=T0)

    try:
        await asyncio.gather(*(churn(store) for store in clients))
        check = clients[0]
        for agent in ("agent0", "agent1", "agent2"):
            ratings = [r for t in tasks if (r := await check.get(t, Direction.OF_AGENT))
                       and r.ratee == agent]
            summary = await check.agent_summary(agent)
            assert summary.ratings == len(ratings)
            for cat in CATS:
                values = [r.scores[cat] for r in ratings if cat in r.scores]
                assert summary.categories[cat].count == len(values)
                assert summary.categories[cat].mean == (sum(values) / len(values)
                                                         if values else None)
            assert summary.overall.count == sum(len(r.scores) for r in ratings)
    finally:
        for store in clients:
            await store.pool.close()
