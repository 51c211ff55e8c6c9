"""People who sign in to the pages and are not agents: supervisors (docs/pages.md).

Passwords are hashed with scrypt from the standard library: memory-hard (n=2^14, r=8:
16 MiB per guess), salted, compared in constant time. Agents sign in with their phone PIN
(``core.agents.check_pin``), never with a password of their own.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from acdkit.core.errors import InvalidInput

_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
_N, _R, _P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024
MIN_PASSWORD = 10
MAX_PASSWORD = 256


class Role(StrEnum):
    SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    password_hash: str


def check_name(name: str) -> str:
    """Return ``name`` if it is 2-32 of a-z 0-9 . _ - starting with a letter; else raise
    ``InvalidInput``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(f"user name {name!r}: 2-32 of a-z 0-9 . _ -, starting with a letter")
    return name


def hash_password(password: str, salt: bytes) -> str:
    """A salted scrypt hash of ``password``; ``InvalidInput`` when it is shorter than
    ``MIN_PASSWORD`` or longer than ``MAX_PASSWORD`` characters."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches ``password_hash`` (constant-time compare)."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        kind, n, r, p, salt, digest = password_hash.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), maxmem=_MAXMEM)
        want = bytes.fromhex(digest)
    except ValueError:
        return False
    return hmac.compare_digest(got, want)
