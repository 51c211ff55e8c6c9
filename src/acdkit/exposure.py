"""What of acdkit is reachable beyond this machine, and how it is protected: the security
half of ``acdkit doctor``.

Five endpoints carry secrets or calls: ARI and AMI (acdkit connects to Asterisk), FastAGI and
the voice media HTTP endpoint (acdkit listens; neither has any authentication) and Redis
(every queued number). Each one on loopback is fine, unless it uses the lab's default
password: that is a warning everywhere, loopback included (any local user or process that
read the lab's files can log in). Elsewhere, each missing protection is named: no TLS, no
authentication, the lab's default password, or every interface.

The lab's default passwords (asterisk/etc/ari.conf, asterisk/etc/manager.conf) are known here
only by their SHA-256, so no secret sits in the code; tests/unit/test_security.py keeps the
hashes in step with the lab's files.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from acdkit.config import Settings
from acdkit.store.primary import parse_sentinels

LAB_SECRET_SHA256 = frozenset({
    "0f57a71ee99d5ed4f15dba0e3db34afd27432b3906594884a95bf02c23ce43b8",  # ARI (ari.conf)
    "ad1b2bc5590c8758115a7bb16bb6fb4c012dfe86a8f2735d8ec61a820f6556a6",  # AMI (manager.conf)
})
_EVERYWHERE = frozenset({"", "0.0.0.0", "::", "*"})


@dataclass(frozen=True)
class Endpoint:
    """One connection or listener: ``secret`` is None where the protocol has no login."""

    name: str
    host: str
    tls: bool
    secret: str | None


def is_lab_secret(value: str) -> bool:
    """True when ``value`` is one of the lab's default passwords."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest() in LAB_SECRET_SHA256


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def endpoints(settings: Settings) -> list[Endpoint]:
    """The endpoints of ``settings``, each with its host, TLS and secret."""
    ari = urlsplit(settings.ari.url)
    media_host = settings.requests.media_listen.rpartition(":")[0]
    return [
        Endpoint("ari", ari.hostname or "", ari.scheme == "https",
                 settings.ari.password.reveal()),
        # panoramisk speaks plain TCP to AMI; Asterisk's AMI over TLS is not used by acdkit.
        Endpoint("ami", settings.ami.host, False, settings.ami.secret.reveal()),
        Endpoint("agi", settings.agi.host, False, None),  # FastAGI: no login, no TLS
        Endpoint("media", media_host, False, None),  # voice media for Asterisk: no login
        *_redis_endpoints(settings),
    ]


def _redis_endpoints(settings: Settings) -> list[Endpoint]:
    """Redis as acdkit reaches it: ``redis.url``'s server, or (with sentinels, where that
    host is not used) each sentinel, with the sentinels' own password."""
    redis = urlsplit(settings.redis.url)
    tls = redis.scheme in ("rediss", "unix")
    if not settings.redis.sentinels:
        return [Endpoint("redis", "" if redis.scheme == "unix" else redis.hostname or "",
                         tls, redis.password)]
    secret = settings.redis.sentinel_password.reveal() or None
    return [Endpoint(f"redis sentinel {host}:{port}", host, tls, secret)
            for host, port in parse_sentinels(settings.redis.sentinels)]


def judge(endpoint: Endpoint) -> tuple[str, str]:
    """``("OK" | "WARN", detail)`` for one endpoint."""
    host, secret = endpoint.host, endpoint.secret
    if endpoint.name == "redis" and not host:
        return "OK", "unix socket"
    if is_loopback(host):
        if secret and is_lab_secret(secret):  # anyone on this machine knows it: still a risk
            return "WARN", (f"{host} (loopback): lab default password in use; whoever can "
                            "read the lab's files can log in: change it")
        return "OK", f"{host} (loopback)"
    problems = ["listens on every interface"] if host in _EVERYWHERE else []
    if secret and is_lab_secret(secret):
        problems.append("uses the lab's default password: change it")
    elif not secret:
        problems.append("has no authentication")
    if not endpoint.tls:
        problems.append("has no TLS")
    if not problems:
        return "OK", f"{host} (TLS and a password of its own)"
    return "WARN", (f"{host or 'every interface'} is not loopback and " + ", ".join(problems) +
                    ": keep it on loopback, or a private network behind a firewall")


def credentials_in_urls(settings: Settings) -> list[str]:
    """Problems with credentials written into ``ari.url`` (acdkit ignores them there: it logs
    in with ``ari.username``/``ari.password``; only the Redis URL carries its own)."""
    ari = urlsplit(settings.ari.url)
    if ari.username or ari.password:
        return ["ari.url holds a user or password: it is ignored; set ari.username and "
                "ari.password (or ACDKIT_ARI_PASSWORD) instead"]
    return []
