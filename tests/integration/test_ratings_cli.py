"""`acdkit ratings` against a real redis-server: aggregates as a table and as JSON, and
managing one's own ratings with clear refusals."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from acdkit.cli import main
from acdkit.core.agents import check_pin
from acdkit.core.errors import NotYourRating
from acdkit.core.ratings import Interaction
from acdkit.core.routing import PriorityRules
from acdkit.store.connection import connect
from acdkit.store.pool import Pool
from acdkit.store.ratings import RatingStore

pytestmark = pytest.mark.integration


@pytest.fixture
def served(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Agent 2 served +15550001 (task t1) and agent 3 served +15550002 (task t2)."""
    monkeypatch.delenv("ACDKIT_CONFIG", raising=False)
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)

    async def seed() -> None:
        store = RatingStore(Pool(await connect(redis_url), PriorityRules()))
        await store.record_served(Interaction("t1", "2", "+15550001", "sales", 100.0))
        await store.record_served(Interaction("t2", "3", "+15550002", "sales", 200.0))
        await store.pool.close()

    asyncio.run(seed())
    return redis_url


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_a_customer_rates_changes_and_deletes_by_cli(served: str) -> None:
    assert cli("ratings", "rate", "t1", "--as", "+15550001", "--score", "4")[0] == 0
    code, out = cli("ratings", "--json")
    [row] = [r for r in json.loads(out) if r["id"] == "2"]
    assert code == 0
    assert row["ratings"] == 1
    assert row["categories"]["attitude"] == {"count": 1, "mean": 4.0, "shrunk": 19 / 6}
    assert row["overall"]["count"] == 3
    code, out = cli("ratings", "rate", "t1", "--as", "+15550001", "--score", "attitude=2")
    assert code == 0 and "attitude=2" in out
    [row] = [r for r in json.loads(cli("ratings", "agents", "--json")[1]) if r["id"] == "2"]
    assert (row["ratings"], row["overall"]["mean"]) == (1, 2.0)
    code, table = cli("ratings")
    assert code == 0
    assert table.splitlines()[0].split() == ["ID", "RATINGS", "OVERALL", "ATTITUDE", "EXPERTISE",
                                             "AVAILABILITY", "DECLINES"]
    assert "2.83 (1)" in table  # (15 + 2) / 6
    assert cli("ratings", "delete", "t1", "--as", "+15550001")[0] == 0
    [row] = json.loads(cli("ratings", "--json")[1])
    assert row["ratings"] == 0


def test_refusals_are_clear_and_change_nothing(served: str) -> None:
    code, out = cli("ratings", "rate", "t9", "--as", "+15550001", "--score", "5")
    assert code == 66 and "no served interaction" in out
    code, out = cli("ratings", "rate", "t2", "--as", "+15550001", "--score", "5")
    assert code == NotYourRating.exit_code and "cannot rate" in out
    code, out = cli("ratings", "rate", "t2", "--as", "+15550002", "--score", "attitude=9")
    assert code == 65 and "1 to 5" in out
    code, out = cli("ratings", "delete", "t2", "--as", "+15550002")
    assert code == 66 and "no rating" in out
    assert json.loads(cli("ratings", "--json")[1]) == []


def test_an_agent_rates_its_customer_and_lists_what_it_served(served: str) -> None:
    assert cli("ratings", "rate", "t2", "--as", "3", "--score", "5")[0] == 0
    code, out = cli("ratings", "customers", "--json")
    assert code == 0
    assert json.loads(out) == [{"number": "+15550002", "ratings": 1, "count": 1, "mean": 5.0,
                                "shrunk": 20 / 6}]
    [item] = json.loads(cli("ratings", "served", "--agent", "3", "--json")[1])
    assert (item["task"], item["scores"]) == ("t2", {"overall": 5})
    [item] = json.loads(cli("ratings", "served", "--number", "+15550001", "--json")[1])
    assert (item["agent"], item["scores"]) == ("2", None)


def test_agents_list_shows_the_rating_and_the_declines(served: str) -> None:
    assert cli("agents", "add", "2", "--pin", "1234", "--skill", "sales")[0] == 0
    assert cli("agents", "add", "5", "--pin", "1234", "--skill", "sales")[0] == 0
    assert cli("ratings", "rate", "t1", "--as", "+15550001", "--score", "5")[0] == 0

    async def declined() -> None:
        store = RatingStore(Pool(await connect(served), PriorityRules()))
        await store.count_decline("2", "t7", 1.0)
        await store.count_decline("2", "t8", 2.0)
        await store.pool.close()

    asyncio.run(declined())
    code, out = cli("agents", "list", "--json")
    assert code == 0
    rows = {r["id"]: (r["rating"], r["ratings"], r["declines"]) for r in json.loads(out)}
    assert rows == {"2": (round(20 / 6, 2), 1, 2), "5": (None, 0, 0)}
    code, table = cli("agents", "list")
    assert code == 0
    assert table.splitlines()[0].split()[-3:] == ["RATING", "RATINGS", "DECLINES"]
    assert table.splitlines()[1].split()[-3:] == ["3.33", "1", "2"]


def test_a_customer_pin_is_set_by_cli_and_only_its_hash_is_stored(served: str) -> None:
    code, out = cli("ratings", "pin", "+15550001", "--pin", "4711")
    assert (code, out.strip()) == (0, "+15550001: ratings PIN set")

    async def stored() -> str | None:
        store = RatingStore(Pool(await connect(served), PriorityRules()))
        try:
            return await store.pin_hash("+15550001")
        finally:
            await store.pool.close()

    hashed = asyncio.run(stored())
    assert hashed is not None and "4711" not in hashed and check_pin("4711", hashed)
    code, out = cli("ratings", "pin", "+15550001", "--pin", "12")
    assert code == 65 and "4 to 12 digits" in out
    assert cli("ratings", "pin", "+15550001", "--clear")[0] == 0
    assert asyncio.run(stored()) is None
    code, out = cli("ratings", "pin", "not-a-number", "--pin", "4711")
    assert code == 65 and "1-20 digits" in out
