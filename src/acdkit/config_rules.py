"""What each setting may hold: one small rule per key, checked by ``config.load_settings``.

A key without an entry in ``RULES`` gets its type's default rule: a number is finite and
between 0 and ``DEFAULT_MAX``; a string (a secret too) is one line of at most
``DEFAULT_LENGTH`` characters without control characters (``core/text.py``); each number of
a list is positive. A new key that needs more declares it here, next to its neighbours::

    "agi.max_connections": Number(1, 100_000),

Problems are sentences without the value, so a secret (or a URL with a password) is never
echoed; ``config.py`` adds the key and where the value came from. docs/configuration.md
("Validation") tells admins the same.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from acdkit.core.errors import ConfigError
from acdkit.core.text import scrub, text_problem

DEFAULT_MAX = 1e9
DEFAULT_LENGTH = 4096
HOUR = 3600.0
YEAR = 366 * 86_400.0


class Rule(Protocol):
    def problem(self, value: Any) -> str | None:
        """Why ``value`` (already of the key's type) is wrong, or None."""


@dataclass(frozen=True)
class Number:
    """A finite number from ``low`` to ``high``; ``above`` makes ``low`` itself wrong."""

    low: float = 0.0
    high: float = DEFAULT_MAX
    above: bool = False

    def problem(self, value: Any) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if value < self.low or (self.above and value == self.low) or value > self.high:
            low = f"above {self.low:g}" if self.above else f"at least {self.low:g}"
            shown = f"{value:g}" if isinstance(value, float) else str(value)[:20]
            return f"must be {low} and at most {self.high:g}, not {shown}"
        return None


def positive(high: float = DEFAULT_MAX) -> Number:
    return Number(0.0, high, above=True)


TIMEOUT = positive(HOUR)  # seconds something waits: never 0, never days
DURATION = Number(0.0, YEAR)  # seconds, 0 allowed (often "off")
WEIGHT = Number(-1e6, 1e6)  # priority points and weights may be negative


@dataclass(frozen=True)
class Text:
    """One line of text without control characters, at most ``length`` characters."""

    length: int = DEFAULT_LENGTH

    def problem(self, value: Any) -> str | None:
        return text_problem(str(value), self.length)


@dataclass(frozen=True)
class Pattern:
    """Text that matches ``regex`` as a whole; ``shape`` says what that is, for the error."""

    regex: str
    shape: str

    def problem(self, value: Any) -> str | None:
        found = text_problem(str(value), DEFAULT_LENGTH)
        if found is None and re.fullmatch(self.regex, str(value)) is None:
            return f"must be {self.shape}"
        return found


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.choices else f"must be one of {', '.join(self.choices)}"


@dataclass(frozen=True)
class Url:
    """A URL with one of ``schemes`` and a host (a ``unix`` URL has a path instead)."""

    schemes: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        found = text_problem(str(value), 2048)
        if found is not None or any(c.isspace() for c in str(value)):
            return found or "must be a URL without spaces"
        try:
            parts = urlsplit(str(value))
            _ = parts.port  # a port that is not a number raises here
        except ValueError:
            return "is not a URL"
        schemes = ", ".join(f"{s}://" for s in self.schemes)
        if parts.scheme not in self.schemes:
            return f"must be a URL starting with {schemes}"
        if not (parts.hostname or (parts.scheme == "unix" and parts.path)):
            return "must name a host"
        return None


@dataclass(frozen=True)
class Each:
    """A non-empty list whose every item keeps ``rule``."""

    rule: Rule

    def problem(self, value: Any) -> str | None:
        if not value:
            return "must hold at least one value"
        problems = [p for p in (self.rule.problem(v) for v in value) if p]
        return f"each value {problems[0]}" if problems else None


@dataclass(frozen=True)
class HostPorts:
    """Empty, or ``host:port`` items separated by commas, each port from 1 to 65535."""

    def problem(self, value: Any) -> str | None:
        found = text_problem(str(value), DEFAULT_LENGTH)
        for item in filter(None, (part.strip() for part in str(value).split(","))):
            host, _, port = item.rpartition(":")
            if found is None and (HOST.problem(host) or not port.isdigit()
                                  or not 0 < int(port) < 65_536):
                found = "must be host:port items separated by commas (10.0.0.1:26379,...)"
        return found


NAME = Pattern(r"[A-Za-z0-9_.-]{1,64}", "1-64 characters of A-Z a-z 0-9 . _ -")
OPTIONAL_NAME = Pattern(r"[A-Za-z0-9_.-]{0,64}", "empty or up to 64 of A-Z a-z 0-9 . _ -")
HOST = Pattern(r"[A-Za-z0-9_.:\[\]-]{1,253}", "a host name or an IP address")
DTMF_KEY = Pattern(r"[0-9*#]?", "one key of 0-9 * #, or empty (off)")
# What customers see: a number, or "Name" <number> (Asterisk's CallerID syntax), or empty.
CALLER_ID = Pattern(r'(?:"[^"<>\\]{0,40}" ?|[A-Za-z0-9 ._\'-]{0,40}? ?)?<\+?[0-9]{1,15}>'
                    r"|\+?[0-9]{1,15}|",
                    'a number (+12125550100) or "Name" <+12125550100>, or empty')

RULES: Mapping[str, Rule] = {
    "ari.url": Url(("http", "https")),
    "ari.username": Pattern(r"[^:\s]{1,64}", "1-64 characters without ':' or spaces"),
    "ari.app": NAME,
    "ari.transport": OneOf(("auto", "websocket", "http")),
    "ari.request_timeout": TIMEOUT,
    "ami.host": HOST,
    "ami.port": Number(1, 65_535),
    "ami.username": Pattern(r"\S{1,64}", "1-64 characters without spaces"),
    "ami.action_timeout": TIMEOUT,
    "redis.url": Url(("redis", "rediss", "unix")),
    "redis.prefix": NAME,
    "redis.sentinels": HostPorts(),
    "redis.master_name": NAME,
    "redis.sentinel_username": Pattern(r"[^:\s]{0,64}", "up to 64 characters without ':' or "
                                       "spaces"),
    "redis.min_replicas_ack": Number(0, 16),
    "node.id": Pattern(r"[A-Za-z0-9_-]{0,32}", "up to 32 characters of A-Z a-z 0-9 _ -"),
    "node.lease_ttl": Number(0.3, 600),
    "node.lease_margin": positive(300),
    "node.standby_poll": positive(600),
    "redis.ack_timeout_ms": Number(1, 60_000),
    "agi.host": HOST,
    "agi.port": Number(1, 65_535),
    "agi.header_timeout": TIMEOUT,
    "agi.callback_priority": WEIGHT,
    "agi.dial_timeout": TIMEOUT,
    "agi.follow_up_skill": OPTIONAL_NAME,
    "agi.abandon_min_wait": DURATION,
    "center.name": Text(80),
    "center.caller_id": CALLER_ID,
    "center.default_region": Pattern(r"[A-Z]{2}", "a two-letter region code (US)"),
    "center.timezone": Pattern(r"[A-Za-z0-9_+/-]{1,64}", "a time zone name (Europe/Paris)"),
    "center.trunk": NAME,
    "agents.ring_timeout": TIMEOUT,
    "agents.wrap_up": Number(0, HOUR),
    "agents.whisper_digits": Number(0, 15),
    "agents.end_key": DTMF_KEY,
    "queue.announce_every": positive(HOUR),
    "queue.music_class": NAME,
    "queue.max_wait": positive(YEAR),
    "priority.base_call": WEIGHT,
    "priority.base_callback": WEIGHT,
    "priority.base_voice_request": WEIGHT,
    "priority.base_outbound": WEIGHT,
    "priority.rating_weight": WEIGHT,
    "priority.preferred_agent_weight": WEIGHT,
    "priority.vip_attribute": NAME,
    "priority.vip_weight": WEIGHT,
    "priority.hook": Pattern(r"(?:[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)?",
                             'empty or "package.module:function"'),
    "overflow.wait_over": DURATION,
    "overflow.first_after": DURATION,
    "overflow.repeat_every": positive(YEAR),
    "overflow.avg_handle": positive(YEAR),
    "overflow.horizon_days": Number(0, 366),
    "numbers.do_not_call": Text(1_000_000),
    "dispatch.sweep_interval": TIMEOUT,
    "callbacks.max_attempts": Number(1, 1000),
    "callbacks.intervals": Each(positive(YEAR)),
    "callbacks.expire_after": DURATION,
    "callbacks.lock_ttl": TIMEOUT,
    "outbound.missed_after": DURATION,
    "outbound.max_attempts": Number(1, 1000),
    "outbound.intervals": Each(positive(YEAR)),
    "outbound.expire_after": DURATION,
    "outbound.agent_key": DTMF_KEY,
    "outbound.agent_follow_up_after": DURATION,
    "requests.max_seconds": Number(1, HOUR),
    "requests.max_silence": Number(0, HOUR),
    "requests.max_reply_seconds": Number(1, HOUR),
    "requests.hold_for_transcript": DURATION,
    "requests.media_listen": Pattern(r"[A-Za-z0-9_.:\[\]-]{0,253}:[0-9]{1,5}",
                                     "host:port (127.0.0.1:8090)"),
    "requests.media_url": Url(("http", "https")),
    "requests.tts_voice": Pattern(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,31}", "a voice name (en-us)"),
    "ratings.prior_mean": Number(1, 5),
    "ratings.key_timeout": positive(60),
    "ratings.choose_agent": Number(0, 9),
    "ratings.preferred_wait": DURATION,
    # Limits (docs/security.md): a cap of 0 would refuse everything.
    "agi.max_connections": Number(1, 100_000),
    "agents.pin_max_failures": Number(1, 1_000),
    "agents.pin_lockout": positive(YEAR),
    "requests.media_max_connections": Number(1, 100_000),
    "requests.media_header_timeout": TIMEOUT,
    "requests.media_idle_timeout": TIMEOUT,
    "requests.media_response_timeout": TIMEOUT,
    "requests.media_max_request_bytes": Number(1_024, 1_048_576),
    "requests.tts_concurrency": Number(1, 64),
    "requests.tts_timeout": TIMEOUT,
    "web.listen": Pattern(r"[A-Za-z0-9_.:\[\]-]{0,253}:[0-9]{1,5}", "host:port (127.0.0.1:8080)"),
    "web.session_ttl": positive(YEAR),
    "web.max_failures": Number(1, 1_000),
    "web.failure_window": positive(YEAR),
    "web.max_clients": Number(1, 100_000),
    "web.max_connections": Number(1, 100_000),
    "web.header_timeout": TIMEOUT,
    # KPIs (docs/kpis.md)
    "kpis.threshold_s": positive(HOUR),
    "kpis.short_abandon_s": Number(0, HOUR),
    "kpis.sl_formula": OneOf(("app_queue", "offered_minus_short")),
}


def rule_of(key: str, kind: type) -> Rule | None:
    """The rule of ``key`` (a dotted name) whose values are of ``kind``: its own, or the
    default of its type; None for tables and lists of tables (checked where they are read)."""
    if key in RULES:
        return RULES[key]
    if kind in (int, float):
        return Number()
    if kind is str:
        return Text()
    if kind is tuple:
        return Each(positive())
    return None


def check(key: str, kind: type, value: Any) -> None:
    """Raise ``ConfigError`` naming ``key`` when ``value`` (of ``kind``) breaks its rule."""
    rule = rule_of(key, kind)
    problem = rule.problem(value) if rule is not None else None
    if problem:
        raise ConfigError(key, problem)


def number(key: str, whole: bool, value: Any) -> int | float:
    """An int (``whole``) or a float from a TOML number or a string; ``ConfigError`` for
    anything else, a fraction for an int, or a number too large for a float."""
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError
        if whole and isinstance(value, int):
            return value
        found = float(value)
        if whole and not found.is_integer():
            raise ValueError
        return int(found) if whole else found
    except (ValueError, OverflowError):
        raise ConfigError(key, f"expected a {'whole ' if whole else ''}number, "
                          f"got {got(value)}") from None


def got(value: Any) -> str:
    """A short, printable form of a wrong value for an error message (never a secret's)."""
    return scrub(reprlib.repr(value))
