"""The real CLI (click's CliRunner) against a real Redis, fed what a script or a paste can
put on a command line: escape sequences, line breaks, NUL, undecodable bytes, 100 KB values
and bad numbers. Each ends in a clear one-line error with exit code 2 (a usage error) or the
error's mapped code, no traceback, and nothing written to Redis."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acdkit.cli import main
from acdkit.core.text import has_control

pytestmark = pytest.mark.integration

BAD = {
    "escape": "\x1b[31mred\x1b[0m",
    "osc": "\x1b]0;owned\x07",
    "crlf": "sales\r\nInjected: yes",
    "nul": "a\x00b",
    "bell": "a\x07",
    "c1-csi": "a\x9b2J",
    "bidi": "\u202eevil",
    "line-separator": "a\u2028b",
    "undecodable": "caf\udce9",  # how Python keeps a non-UTF-8 argv byte
    "100kb": "x" * 100_000,
}
# Every free-text option and argument, with X where the value goes.
COMMANDS = [
    "agents add X --pin 1234", "agents add a1 --pin 1234 --name X",
    "agents add a1 --pin X", "agents add a1 --pin 1234 --attr team=X",
    "agents add a1 --pin 1234 --skill X", "agents login a1 --reach X",
    "agents pause a1 --reason X", "agents logout X", "agents resume X", "agents mode X per_call",
    "tasks import LEADS --source X", "tasks import LEADS --skill X",
    "tasks import LEADS --map number=X", "tasks followup X --skill sales",
    "tasks followup 2125550142 --skill X", "tasks followup 2125550142 --skill s --reason X",
    "tasks followup 2125550142 --skill s --agent X", "tasks cancel X",
    "tasks cancel t1 --reason X", "tasks explain X", "tasks show X",
    "callbacks list --queue X", "callbacks list --since X", "callbacks show X",
    "callbacks replay X", "callbacks cancel t1 --reason X", "callbacks purge --older-than X",
    "dnc add X", "dnc remove X",
    "ratings served --number X", "ratings served --agent X", "ratings rate X --as 1 --score 5",
    "ratings rate t1 --as X --score 5", "ratings rate t1 --as 1 --score X",
    "ratings delete t1 --as X", "ratings show X", "ratings pin X --pin 1234",
    "ratings pin 2125550142 --pin X",
    "requests show X", "requests reply X --text hi", "requests reply 1 --text hi --by X",
    "requests close X", "worker --name X", "agi --host X",
]


@pytest.fixture
def cli(redis_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[str]], Result]]:
    config = tmp_path / "acdkit.toml"
    config.write_text('[numbers]\ncalling_hours = "mon-sun 00:00-24:00"\n', encoding="utf-8")
    leads = tmp_path / "leads.csv"
    leads.write_text("number,name\n2125550142,Ada\n", encoding="utf-8")
    monkeypatch.setenv("ACDKIT_CONFIG", str(config))
    monkeypatch.setenv("ACDKIT_REDIS_URL", redis_url)
    runner = CliRunner()
    client = redis.Redis.from_url(redis_url)

    def invoke(args: list[str]) -> Result:
        args = [str(leads) if a == "LEADS" else a for a in args]
        result = runner.invoke(main, args)
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            repr(result.exception)
        return result

    try:
        yield invoke
    finally:
        client.close()


def nothing_stored(redis_url: str) -> bool:
    client = redis.Redis.from_url(redis_url)
    try:
        return client.dbsize() == 0
    finally:
        client.close()


def refused(result: Result) -> None:
    """A usage error: exit 2, a short message, no control character echoed."""
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output, result.output
    assert len(result.output) < 2_000
    assert not has_control(result.output.replace("\n", ""))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("value", list(BAD.values()), ids=list(BAD))
def test_free_text_with_control_characters_or_too_long_is_refused(
        cli: Callable[[list[str]], Result], redis_url: str, command: str, value: str) -> None:
    args = [a.replace("X", value) for a in command.split()]
    assert args != command.split(), "no X in the command"
    refused(cli(args))
    assert nothing_stored(redis_url)


@pytest.mark.parametrize(("args", "code"), [
    (["ratings", "served", "--limit", "-1"], 2),
    (["ratings", "served", "--limit", "0"], 2),
    (["ratings", "served", "--limit", "1e9"], 2),
    (["ratings", "show", "a1", "--limit", "99999999999999999999"], 2),
    (["requests", "list", "--limit", "nan"], 2),
    (["agi", "--port", "70000"], 2),
    (["agi", "--port", "-1"], 2),
    (["agents", "add", "a1", "--pin", "1234", "--skill", "sales=99"], 65),
    (["agents", "add", "a1", "--pin", "1234", "--skill", "sales=²"], 65),
    (["--redis-url", "redis://127.0.0.1:1/0\r\nFLUSHALL", "tasks", "list"], 78),
    (["--ari-url", "http://x\x1b[2J", "doctor"], 78),
])
def test_bad_numbers_and_urls_are_clear_errors(cli: Callable[[list[str]], Result],
                                               redis_url: str, args: list[str],
                                               code: int) -> None:
    result = cli(args)
    assert result.exit_code == code, result.output
    assert not has_control(result.output.replace("\n", ""))
    assert nothing_stored(redis_url)


def test_clean_values_still_work(cli: Callable[[list[str]], Result], redis_url: str) -> None:
    added = cli(["agents", "add", "a1", "--pin", "1234", "--name", "Zoë O'Brien-Smith",
                 "--attr", "team=north east", "--skill", "sales=3"])
    assert added.exit_code == 0, added.output
    [agent] = json.loads(cli(["agents", "list", "--json"]).output)
    assert (agent["name"], agent["attributes"]) == ("Zoë O'Brien-Smith", {"team": "north east"})
    assert not nothing_stored(redis_url)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=250))
def test_any_agent_name_is_stored_clean_or_refused_with_nothing_stored(
        cli: Callable[[list[str]], Result], redis_url: str, name: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
        result = cli(["agents", "add", "a1", "--pin", "1234", "--name", name])
        if has_control(name) or len(name) > 200:
            refused(result)
            assert client.dbsize() == 0
        else:
            assert result.exit_code == 0, result.output
        stored = b"".join(v for k in client.scan_iter() if client.type(k) == b"hash"
                          for v in client.hvals(k))
        assert not has_control(stored.decode("utf-8", "replace").replace("\ufffd", ""))
    finally:
        client.flushdb()
        client.close()
