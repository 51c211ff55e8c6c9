"""acdkit.toml and ACDKIT_* variables as an attacker (or a tired admin) writes them: every
input ends in a ``Settings`` whose values keep their rules (config_rules.py) or in one
``ConfigError`` naming the key and the source, never a traceback, never a secret echoed."""

from __future__ import annotations

import json
import math
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from acdkit.cli import main
from acdkit.config import Secret, Settings, load_settings
from acdkit.config_rules import RULES
from acdkit.core.errors import ConfigError
from acdkit.core.text import has_control

SECRET = "s3cret-never-shown-7f2k"
KEYS = sorted(f"{section.name}.{item.name}" for section in fields(Settings)
              if is_dataclass(getattr(Settings(), section.name))
              for item in fields(getattr(Settings(), section.name)))


def toml(value: Any) -> str:
    """A TOML value (inline) for ``value``: enough of TOML for these tests."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"


def document(tables: dict[str, dict[str, Any]]) -> str:
    return "".join(f"[{json.dumps(name)}]\n" + "".join(f"{json.dumps(k)} = {toml(v)}\n"
                                                       for k, v in items.items())
                   for name, items in tables.items())


def load(tmp_path: Path, text: str | bytes = "", env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "acdkit.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    return load_settings(path, env=env or {})


def assert_sound(found: Settings) -> None:
    """Every value of accepted settings keeps its rule: finite numbers, clean text."""
    for section in fields(found):
        value = getattr(found, section.name)
        if not is_dataclass(value):
            continue
        for item in fields(value):
            got = getattr(value, item.name)
            got = got.reveal() if isinstance(got, Secret) else got
            if isinstance(got, float):
                assert math.isfinite(got), (section.name, item.name, got)
            if isinstance(got, str):
                assert not has_control(got), (section.name, item.name)
            if isinstance(got, tuple):
                assert got and all(math.isfinite(v) and v > 0 for v in got)


# -- the defects, one by one -------------------------------------------------------------

@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("key", ["ari.request_timeout", "ami.action_timeout",
                                 "agi.header_timeout", "agi.dial_timeout",
                                 "agents.ring_timeout", "callbacks.lock_ttl"])
def test_a_timeout_must_be_a_positive_finite_number(tmp_path: Path, key: str,
                                                    value: str) -> None:
    section, item = key.split(".")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"[{section}]\n{item} = {value}\n")
    assert err.value.key == key and str(tmp_path / "acdkit.toml") in str(err.value)
    env = f"ACDKIT_{section}_{item}".upper()
    with pytest.raises(ConfigError) as err:
        load(tmp_path, env={env: value})
    assert err.value.key == key and env in str(err.value)


def test_nan_and_infinity_are_refused_for_every_number_key(tmp_path: Path) -> None:
    numbers = [k for k in KEYS if isinstance(_default(k), int | float)
               and not isinstance(_default(k), bool)]
    assert len(numbers) > 40
    for key in numbers:
        for value in ("nan", "inf"):
            with pytest.raises(ConfigError, match=key):
                load(tmp_path, env={f"ACDKIT_{key.replace('.', '_').upper()}": value})


def _default(key: str) -> Any:
    section, item = key.split(".")
    return getattr(getattr(Settings(), section), item)


@pytest.mark.parametrize("caller_id", ["+12125550100\r\nAction: Originate", "+1212\n",
                                       "12125550100\x00", "\x1b[31m+1212", "not a number",
                                       '"Evil\r\n" <+12125550100>'])
def test_a_caller_id_with_a_line_break_or_another_shape_is_refused(tmp_path: Path,
                                                                   caller_id: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, document({"center": {"caller_id": caller_id}}))
    assert err.value.key == "center.caller_id"
    assert "\r" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="ACDKIT_CENTER_CALLER_ID"):
        load(tmp_path, env={"ACDKIT_CENTER_CALLER_ID": caller_id})


@pytest.mark.parametrize("caller_id", ["", "+12125550100", "12125550100",
                                       '"acdkit" <+12125550100>', "Sales <2125550100>"])
def test_caller_ids_of_asterisk_shape_are_kept(tmp_path: Path, caller_id: str) -> None:
    found = load(tmp_path, document({"center": {"caller_id": caller_id}}))
    assert found.center.caller_id == caller_id


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not UTF-8"):
        load(tmp_path, b'[center]\nname = "caf\xe9"\n')


@pytest.mark.parametrize("depth", [12, 400, 5000])
def test_deeply_nested_toml_is_a_config_error(tmp_path: Path, depth: int) -> None:
    with pytest.raises(ConfigError, match="deep"):
        load(tmp_path, "[ivr]\nmain = " + "[" * depth + "]" * depth + "\n")
    with pytest.raises(ConfigError, match="deep"):
        load(tmp_path, "[ivr]\nmain = " + "{a = " * depth + "1" + "}" * depth + "\n")


@pytest.mark.parametrize("value", [[SECRET], {"a": SECRET}, True, [[SECRET, 1]]])
@pytest.mark.parametrize("key", ["ari.password", "ami.secret"])
def test_a_secret_of_the_wrong_type_is_never_echoed(tmp_path: Path, key: str,
                                                    value: Any) -> None:
    section, item = key.split(".")
    with pytest.raises(ConfigError) as err:
        load(tmp_path, document({section: {item: value}}))
    assert err.value.key == key
    assert SECRET not in str(err.value) and "not shown" in str(err.value)


@pytest.mark.parametrize("value", [SECRET + "\r\nAction: Originate", SECRET + "\x00",
                                   SECRET * 400])
def test_a_secret_with_a_control_character_or_too_long_is_refused_unshown(
        tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, env={"ACDKIT_AMI_SECRET": value})
    assert err.value.key == "ami.secret" and SECRET not in str(err.value)


def test_a_url_with_a_password_is_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, env={"ACDKIT_REDIS_URL": f"http://:{SECRET}@10.0.0.1:6379/0"})
    assert err.value.key == "redis.url" and SECRET not in str(err.value)


@pytest.mark.parametrize(("key", "value"), [
    ("ami.port", "0"), ("ami.port", "70000"), ("ami.port", "2.5"), ("agi.port", "0"),
    ("ari.url", "ftp://x"), ("ari.url", "http://"), ("ari.url", "http://h:port"),
    ("ari.transport", "carrier-pigeon"), ("center.trunk", "pstn/evil"),
    ("center.default_region", "usa"), ("agents.end_key", "##"), ("outbound.agent_key", "x"),
    ("priority.hook", "os.system"), ("requests.tts_voice", "-w/etc/passwd"),
    ("requests.media_listen", "8090"), ("callbacks.intervals", "60,-1"),
    ("callbacks.intervals", ","), ("callbacks.max_attempts", "0"),
    ("ratings.prior_mean", "9"), ("ratings.choose_agent", "10"), ("center.name", "x" * 81),
    ("queue.music_class", "default\n"), ("redis.prefix", "a{b}"),
])
def test_each_key_keeps_its_range_and_shape(tmp_path: Path, key: str, value: str) -> None:
    env = f"ACDKIT_{key.replace('.', '_').upper()}"
    with pytest.raises(ConfigError) as err:
        load(tmp_path, env={env: value})
    assert err.value.key == key and env in str(err.value)


def test_every_rule_names_a_real_key_and_the_defaults_and_the_lab_keep_them() -> None:
    assert set(RULES) <= set(KEYS)
    assert_sound(load_settings(None, env={}))
    lab = Path(__file__).resolve().parents[2] / "asterisk" / "acdkit.toml"
    assert_sound(load_settings(lab, env={}))


def test_an_unknown_key_with_control_characters_is_named_printably(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, document({"center": {"x\x1b[2J\r\n": 1}}))
    assert err.value.key.startswith("center.x") and not has_control(str(err.value))


# -- random input ----------------------------------------------------------------------------

SCALARS = st.one_of(
    st.booleans(), st.integers(min_value=-2**63, max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "-1", "nan", "inf", "1e999", "0", "\r\n", "+12125550100", SECRET]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)
KEY = st.one_of(st.sampled_from(KEYS), st.text(max_size=12).map(lambda k: f"center.{k}"))


def _tables(pairs: list[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for key, value in pairs:
        section, _, item = key.partition(".")
        tables.setdefault(section, {})[item] = value
    return tables


def _bounded(run: Any) -> None:
    try:
        found = run()
    except ConfigError as err:
        assert not has_control(str(err)), str(err)
        return
    assert_sound(found)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(KEY, VALUES), max_size=6))
def test_random_toml_is_settings_or_one_config_error(tmp_path: Path,
                                                     pairs: list[tuple[str, Any]]) -> None:
    _bounded(lambda: load(tmp_path, document(_tables(pairs))))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4))
def test_a_secret_in_any_wrong_shape_is_never_echoed(tmp_path: Path,
                                                     pairs: list[tuple[str, Any]]) -> None:
    assume(SECRET not in repr(pairs))  # only the secrets hold it
    tables = _tables([*pairs, ("ari.password", [SECRET]), ("ami.secret", {"x": SECRET})])
    with pytest.raises(ConfigError) as err:
        load(tmp_path, document(tables))
    assert SECRET not in str(err.value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200) | st.sampled_from([b"\xff\xfe", b"a = \xc3\x28\n",
                                                      b"[ari]\nurl = '\x00'\n"]))
def test_random_bytes_are_settings_or_one_config_error(tmp_path: Path, raw: bytes) -> None:
    _bounded(lambda: load(tmp_path, raw))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(env=st.dictionaries(st.sampled_from(KEYS).map(
    lambda k: f"ACDKIT_{k.replace('.', '_').upper()}"),
    st.text(max_size=40) | st.sampled_from(["nan", "-inf", "1e999", "-0", "a\udcff"]),
    max_size=5))
def test_random_environment_values_are_settings_or_one_config_error(
        tmp_path: Path, env: dict[str, str]) -> None:
    _bounded(lambda: load(tmp_path, env=env))


# -- the command line ------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "words"), [
    (b'[center]\nname = "\xff"\n', "not UTF-8"),
    (b"[ivr]\nmain = " + b"[" * 3000 + b"]" * 3000 + b"\n", "too deeply"),
    (b"[ari]\nrequest_timeout = nan\n", "ari.request_timeout"),
    (b'[ari]\npassword = ["' + SECRET.encode() + b'"]\n', "ari.password"),
])
def test_the_cli_shows_a_clear_message_and_exits_78(tmp_path: Path, content: bytes,
                                                    words: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["--config", str(path), "tasks", "list"])
    assert result.exit_code == 78, result.output
    assert words in result.output and "Traceback" not in result.output
    assert SECRET not in result.output
    assert not isinstance(result.exception, RecursionError | UnicodeDecodeError)
