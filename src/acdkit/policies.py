"""Settings to the core's policy objects: priority rules, the dialing policy, retries.

The one place where configuration meets the core; adapters and commands call these.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import replace
from types import MappingProxyType

from acdkit.config import Settings
from acdkit.core.agents import ReachPolicy
from acdkit.core.callbacks import RetryPolicy
from acdkit.core.dtmf import BusinessHours
from acdkit.core.errors import ConfigError
from acdkit.core.numbers import NumberPolicy, normalize
from acdkit.core.pins import PinPolicy
from acdkit.core.routing import PriorityHook, PriorityRules
from acdkit.core.rules import rules_from_config
from acdkit.core.tasks import TaskKind


def priority_rules(settings: Settings) -> PriorityRules:
    """The routing rules from the ``[priority]`` settings, with the user's hook loaded."""
    p = settings.priority
    return PriorityRules(
        base=MappingProxyType({TaskKind.CALL: p.base_call, TaskKind.CALLBACK: p.base_callback,
                               TaskKind.VOICE_REQUEST: p.base_voice_request,
                               TaskKind.OUTBOUND: p.base_outbound}),
        aging_per_minute=p.aging_per_minute,
        rating_weight=p.rating_weight,
        preferred_agent_weight=p.preferred_agent_weight,
        vip_attribute=p.vip_attribute,
        vip_weight=p.vip_weight,
        hook=load_hook(p.hook) if p.hook else None,
        business=rules_from_config(settings.rules),
    )


def number_policy(settings: Settings) -> NumberPolicy:
    """The dialing policy from ``[center]`` and ``[numbers]``."""
    n = settings.numbers
    region = settings.center.default_region
    policy = NumberPolicy(
        default_region=region,
        center_timezone=settings.center.timezone,
        allowed_countries=frozenset(_csv(n.allowed_countries)) or frozenset({region}),
        allowed_prefixes=tuple(_csv(n.allowed_prefixes)),
        max_pending_per_number=n.max_pending_per_number,
        max_attempts_per_number=settings.outbound.max_attempts_per_day,
    )
    if n.calling_hours:
        policy = replace(policy, calling_hours=BusinessHours.parse(n.calling_hours,
                                                                    "numbers.calling_hours"))
    dnc = frozenset(normalize(raw, policy) for raw in _csv(n.do_not_call))
    return replace(policy, dnc=dnc)


def reach_policy(settings: Settings, numbers: NumberPolicy | None = None) -> ReachPolicy:
    """Where agents may be reached: ``agents.endpoints``, and outside numbers that the
    dialing policy (``numbers``, else built from the settings) allows; never the trunk."""
    return ReachPolicy(numbers=numbers or number_policy(settings),
                       endpoints=tuple(_csv(settings.agents.endpoints)),
                       trunk=settings.center.trunk)


def pin_policy(settings: Settings) -> PinPolicy:
    """How many wrong PINs lock an agent id, or a caller's number (its ``ratings pin``),
    and for how long: ``agents.pin_max_failures`` and ``agents.pin_lockout``."""
    return PinPolicy(settings.agents.pin_max_failures, settings.agents.pin_lockout)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def load_hook(path: str) -> PriorityHook:
    """Import ``package.module:function``; raise ``ConfigError`` naming ``priority.hook``."""
    module_name, _, attr = path.partition(":")
    try:
        hook = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError("priority.hook", f"cannot load {path!r}: {exc}") from None
    if not callable(hook):
        raise ConfigError("priority.hook", f"{path!r} is not callable")
    return hook  # type: ignore[no-any-return]


def retry_policy(settings: Settings) -> RetryPolicy:
    """The callback retry policy of ``[callbacks]``; raises ``ConfigError`` naming the key."""
    c = settings.callbacks
    return RetryPolicy(max_attempts=c.max_attempts, intervals=c.intervals,
                       expire_after=c.expire_after or None, follow_up=c.follow_up)


def outbound_retry(settings: Settings, source: str) -> RetryPolicy:
    """The retry policy of outbound tasks from ``source``: ``[outbound]``, overridden by the
    first ``outbound.sources`` pattern that matches; raises ``ConfigError`` naming the key."""
    o = settings.outbound
    over = next((v for k, v in o.sources.items() if fnmatch.fnmatchcase(source, k)), {})
    unknown = set(over) - {"max_attempts", "intervals"}
    if unknown:
        raise ConfigError(f"outbound.sources.{sorted(unknown)[0]}", "no such setting")
    intervals = over.get("intervals", o.intervals)
    try:
        return RetryPolicy(max_attempts=int(over.get("max_attempts", o.max_attempts)),
                           intervals=tuple(float(i) for i in intervals),
                           expire_after=o.expire_after or None, follow_up=False)
    except (TypeError, ValueError) as err:
        raise ConfigError("outbound.sources", f"bad retry override: {err}") from None
