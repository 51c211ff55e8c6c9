"""The FastAGI wire format as pure functions: the request header Asterisk sends when
``AGI(agi://host:port/<route>?<params>)`` connects, one command line, and the reply lines.

Nothing here does I/O (``agi/server.py`` reads the socket, ``agi/session.py`` sends commands),
so the parsers can be fuzzed and tested from recorded transcripts. Bad input raises one of::

    AgiProtocolError (core.errors.InvalidInput)
    ├── BadHeader          the request header is not ``agi_<name>: <value>`` lines
    ├── HeaderTooLarge     more than MAX_HEADER_BYTES or MAX_HEADER_LINES
    ├── UnknownRoute       a script name that is not a route name, or route parameters and
    │                      arguments (``agi_arg_N``) that cannot be used
    ├── BadResponse        a reply line that is not ``<code> result=<n> [(data)] [k=v]``
    └── BadCommand         a command argument that cannot go on the wire (newline, quote, ...)

Seen on Asterisk 22.10.1: the header ends with an empty line; replies are
``200 result=<n> [(<data>)] [endpos=<n>]``, ``510 Invalid or unknown command``,
``511 Command Not Permitted on a dead channel or intercept routine`` and a multi-line
``520-Invalid command syntax.  Proper usage follows:`` ... ``520 End of proper usage.``;
when the channel hangs up, a line ``HANGUP`` arrives on its own.

Header values come partly from the caller (``agi_calleridname`` is the SIP display name), so
none is kept raw: each control character (``core/text.py``) in a header value becomes U+FFFD.
Route parameters and arguments, which the dialplan writes, are refused when they hold one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl, unquote

from acdkit.core.errors import InvalidInput
from acdkit.core.text import has_control, scrub

MAX_HEADER_BYTES = 16_384  # Asterisk 22 sends about 700 bytes
MAX_HEADER_LINES = 128
HANGUP_LINE = "HANGUP"
_HEADER_LINE = re.compile(r"agi_([a-z0-9_]{1,32}): ?(.*)")
_ROUTE = re.compile(r"[a-z][a-z0-9-]{0,39}")
_PARAM = re.compile(r"[A-Za-z0-9_]{1,32}")
_REPLY = re.compile(r"([0-9]{3})(?: result=(-?[0-9*#A-D]*)(?: \((.*)\))?((?: [a-z_]+=\S*)*))?\s*")
_EXTRA = re.compile(r" ([a-z_]+)=(\S*)")
_STATUS_ONLY = re.compile(r"([0-9]{3})(?:[ -].*)?")
_COMMAND = re.compile(r"[A-Z]+(?: [A-Z]+){0,3}")
_UNSAFE_ARG = frozenset('\n\r\0"\\')
_EMPTY: Mapping[str, str] = MappingProxyType({})


class AgiProtocolError(InvalidInput):
    """Something on the FastAGI wire that acdkit cannot use."""


class BadHeader(AgiProtocolError):
    pass


class HeaderTooLarge(AgiProtocolError):
    pass


class UnknownRoute(AgiProtocolError):
    pass


class BadResponse(AgiProtocolError):
    pass


class BadCommand(AgiProtocolError):
    pass


@dataclass(frozen=True)
class AgiRequest:
    """The request header: ``env`` holds the ``agi_*`` values without the prefix, ``route`` the
    script name (``callback-offer``), ``params`` its query (``queue=sales``), ``args`` the
    ``agi_arg_N`` values in order."""

    env: Mapping[str, str]
    route: str
    params: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    args: tuple[str, ...] = ()

    @property
    def channel(self) -> str:
        return self.env.get("channel", "")

    @property
    def unique_id(self) -> str:
        return self.env.get("uniqueid", "")

    @property
    def caller_number(self) -> str:
        """The calling number as received (``unknown`` from Asterisk becomes empty)."""
        number = self.env.get("callerid", "")
        return "" if number.lower() in ("unknown", "") else number


@dataclass(frozen=True)
class AgiResponse:
    """One reply: ``code`` (200 is success), ``result`` (``-1`` is failure or hang-up),
    ``data`` (what the parentheses held, e.g. ``timeout`` or a variable's value) and any
    ``key=value`` extras (``endpos``)."""

    code: int
    result: int = 0
    data: str | None = None
    extras: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    text: str = ""  # the raw line, for logs
    raw_result: str = ""  # the result as sent: GET DATA's digits keep leading zeros and *

    @property
    def ok(self) -> bool:
        return self.code == 200 and self.result != -1

    @property
    def digit(self) -> str | None:
        """The key a STREAM FILE / WAIT FOR DIGIT reply carries (its result is the ASCII
        code), or None for no key."""
        if self.code != 200 or self.result <= 0:
            return None
        char = chr(self.result) if self.result < 128 else ""
        return char if char in "0123456789*#ABCD" and char else None


def parse_request(data: bytes) -> AgiRequest:
    """Parse the request header (everything up to and including the empty line).

    Raises ``HeaderTooLarge``, ``BadHeader`` (not UTF-8, a line that is not ``agi_x: y``, no
    ``agi_network_script``/``agi_request``), ``UnknownRoute`` (a script name that is not
    ``[a-z][a-z0-9-]*``, a bad query, an argument with a control character). Control
    characters in the other values are replaced by U+FFFD.
    """
    if len(data) > MAX_HEADER_BYTES:
        raise HeaderTooLarge(f"AGI header of {len(data)} bytes (limit {MAX_HEADER_BYTES})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadHeader("AGI header is not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if len(lines) > MAX_HEADER_LINES:
        raise HeaderTooLarge(f"AGI header of {len(lines)} lines (limit {MAX_HEADER_LINES})")
    env: dict[str, str] = {}
    for line in lines:
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            raise BadHeader(f"not an AGI header line: {line[:80]!r}")
        env[match[1]] = match[2]
    script = env.get("network_script") or _script_of(env.get("request", ""))
    if not script:
        raise BadHeader("AGI header names no script (agi_network_script)")
    route, params = parse_script(script)
    args = tuple(env[f"arg_{i}"] for i in range(1, 64) if f"arg_{i}" in env)
    for index, arg in enumerate(args, 1):
        if has_control(arg):
            raise UnknownRoute(f"route {route}: argument {index} holds a control character")
    clean = {name: scrub(value) for name, value in env.items()}
    return AgiRequest(MappingProxyType(clean), route, params, args)


def _script_of(request: str) -> str:
    """``callback-offer?queue=sales`` from ``agi://127.0.0.1:4573/callback-offer?queue=sales``."""
    if not request.startswith("agi://"):
        return ""
    _, _, path = request[len("agi://"):].partition("/")
    return path


def parse_script(script: str) -> tuple[str, Mapping[str, str]]:
    """Split ``callback-offer?queue=sales`` into the route name and its parameters.

    Raises ``UnknownRoute`` for a name outside ``[a-z][a-z0-9-]{0,39}`` or a parameter name
    outside ``[A-Za-z0-9_]``, a repeated name, or a value with a control character
    (``core/text.py``: DEL, C1 and bidirectional controls too)."""
    path, _, query = script.partition("?")
    name = unquote(path.strip("/"))
    if not _ROUTE.fullmatch(name):
        raise UnknownRoute(f"route {name[:40]!r} is not a route name")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query),
                          max_num_fields=32)
    except ValueError as err:
        raise UnknownRoute(f"route {name}: bad parameters ({err})") from None
    params: dict[str, str] = {}
    for key, value in pairs:
        if not _PARAM.fullmatch(key) or key in params or has_control(value):
            raise UnknownRoute(f"route {name}: bad parameter {key[:32]!r}")
        params[key] = value
    return name, MappingProxyType(params)


def route_function_name(route: str) -> str:
    """``callback-offer`` → ``callback_offer``: the route's function in ``agi/routes.py``."""
    return route.replace("-", "_")


def parse_response(line: str) -> AgiResponse:
    """Parse one reply line (the last line of a multi-line ``520``).

    Raises ``BadResponse`` for anything else (``HANGUP`` included: the session handles it)."""
    text = line.rstrip("\r\n")
    match = _REPLY.fullmatch(text)
    if match is None or match[2] is None:
        status = _STATUS_ONLY.fullmatch(text)
        if status is None or status[1] == "200":  # a success always carries its result
            raise BadResponse(f"not an AGI reply: {text[:80]!r}")
        return AgiResponse(int(status[1]), -1, None, _EMPTY, text)
    extras = dict(_EXTRA.findall(match[4] or ""))
    raw = match[2]
    result = int(raw) if raw.lstrip("-").isdigit() else 0
    return AgiResponse(int(match[1]), result, match[3], MappingProxyType(extras), text, raw)


def is_continuation(line: str) -> bool:
    """True for the lines of a multi-line reply before its last (``520-...`` and the usage
    text in between); the reader keeps reading until ``is_final_520``."""
    return line.startswith("520-")


def is_final_520(line: str) -> bool:
    return line.startswith("520 ")


def format_command(command: str, *args: str | int) -> bytes:
    """One command line: ``command`` (upper-case words, ``GET VARIABLE``) as it is, each
    argument after it, in double quotes when empty or holding a space. Raises ``BadCommand``
    for another command shape, or an argument with a newline, NUL, quote or backslash."""
    if not _COMMAND.fullmatch(command):
        raise BadCommand(f"{command[:40]!r} is not an AGI command name")
    words = [command]
    for part in args:
        word = str(part)
        if _UNSAFE_ARG & set(word):
            raise BadCommand(f"AGI argument {word[:40]!r} holds a character AGI cannot carry")
        words.append(f'"{word}"' if (not word or " " in word or "\t" in word) else word)
    return (" ".join(words) + "\n").encode("utf-8")
