"""The IVR menu model: prompts and DTMF choices that select a skill.

A menu answers each key press (or silence) with a ``Route`` (a skill is chosen) or a
``Reprompt``. Invalid keys and silence re-prompt up to ``attempts`` times, then the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from acdkit.core.errors import ConfigError

_DEFAULT_CHOICES: Mapping[str, str] = MappingProxyType({"1": "sales", "2": "support"})
_KEYS = frozenset("0123456789*#")


@dataclass(frozen=True)
class Menu:
    """One IVR entry (``Stasis(acdkit,inbound,<entry>)``)."""

    entry: str = "main"
    greeting: tuple[str, ...] = ("sound:acdkit/welcome",)
    prompt: tuple[str, ...] = ("sound:acdkit/menu-main",)  # "for sales press 1, support 2"
    invalid: tuple[str, ...] = ("sound:acdkit/invalid",)
    choices: Mapping[str, str] = field(default_factory=lambda: _DEFAULT_CHOICES)
    default: str = "sales"
    timeout: float = 5.0  # seconds to wait for a key after the prompt
    attempts: int = 2  # prompts before the default is taken


@dataclass(frozen=True)
class Route:
    skill: str
    by_default: bool = False


@dataclass(frozen=True)
class Reprompt:
    attempt: int


def answer(menu: Menu, key: str | None, attempt: int) -> Route | Reprompt:
    """The menu's answer to ``key`` (``None`` for silence) on prompt number ``attempt`` (1..)."""
    if key is not None and key in menu.choices:
        return Route(menu.choices[key])
    if attempt < menu.attempts:
        return Reprompt(attempt + 1)
    return Route(menu.default, by_default=True)


def menu_from_config(entry: str, data: Mapping[str, Any]) -> Menu:
    """Build a menu from an ``[ivr.<entry>]`` table; raise ``ConfigError`` naming the key."""
    key = f"ivr.{entry}"
    choices = data.get("choices", _DEFAULT_CHOICES)
    if not isinstance(choices, Mapping) or not all(
        isinstance(k, str) and k in _KEYS and isinstance(v, str) and v for k, v in choices.items()
    ):
        raise ConfigError(f"{key}.choices", "a table of single keys (0-9 * #) to skill names")
    default = data.get("default", next(iter(choices.values()), "sales"))
    attempts = data.get("attempts", 2)
    if not isinstance(attempts, int) or attempts < 1:
        raise ConfigError(f"{key}.attempts", "a whole number of at least 1")
    timeout = data.get("timeout", 5.0)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{key}.timeout", "a positive number of seconds")
    return Menu(
        entry=entry,
        greeting=_media(data.get("greeting", Menu.greeting), f"{key}.greeting"),
        prompt=_media(data.get("prompt", Menu.prompt), f"{key}.prompt"),
        invalid=_media(data.get("invalid", Menu.invalid), f"{key}.invalid"),
        choices=MappingProxyType(dict(choices)),
        default=str(default),
        timeout=float(timeout),
        attempts=attempts,
    )


def _media(value: Any, key: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(m, str) and m for m in items):
        raise ConfigError(key, "a media URI or a list of them, e.g. 'sound:hello-world'")
    return tuple(m if ":" in m else f"sound:{m}" for m in items)
