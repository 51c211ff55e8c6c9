"""``acdkit doctor``: is everything acdkit needs there, safe and durable?

Each check gives OK, WARN or FAIL with a sentence that names what is wrong.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from acdkit import exposure
from acdkit.ari.client import AriClient
from acdkit.checks import Check, doctor_client
from acdkit.config import Settings
from acdkit.core.errors import AcdError
from acdkit.doctor_install import check_install
from acdkit.doctor_sentinel import check_sentinels
from acdkit.services.standby import node_id, shown
from acdkit.store.keys import Keys
from acdkit.store.lease import NodeLease
from acdkit.store.primary import primary_of
from acdkit.store.quarantine import Quarantine

# Versions that fix advisories in the parts acdkit uses (ARI, AMI), per release branch.
# CVE-2024-42365: AMI Originate lets a user with write=originate run shell commands.
ADVISORIES: tuple[tuple[str, dict[int, tuple[int, ...]]], ...] = (
    ("CVE-2024-42365 (AMI originate command injection)",
     {18: (18, 24, 2), 20: (20, 9, 2), 21: (21, 4, 2)}),
)


def reason(exc: BaseException, seconds: float) -> str:
    """Why a check failed, never empty: asyncio's TimeoutError carries no message."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {seconds:g} s"
    return str(exc) or type(exc).__name__


async def run_checks(settings: Settings) -> list[Check]:
    checks = [check_config(settings)]
    checks += await check_redis(settings)
    checks += await check_sentinels(settings)
    checks.append(check_redis_acl(settings))
    ari, version = await check_ari(settings)
    checks += ari
    checks.append(check_version(version))
    checks += await check_ami(settings)
    checks += check_addresses(settings)
    checks.append(await check_quarantine(settings))
    if settings.node.lease:  # one active serve per node, the others standby
        checks.append(await check_lease(settings))
    checks += await check_install(settings)
    return checks


def check_config(settings: Settings) -> Check:
    missing = [k for k, v in (("ari.password", settings.ari.password),
                              ("ami.secret", settings.ami.secret)) if not v]
    if missing:
        return Check("config", "FAIL", f"{', '.join(missing)} not set (acdkit.toml or "
                     f"ACDKIT_{missing[0].upper().replace('.', '_')})")
    return Check("config", "OK", f"from {settings.source}")


async def check_redis(settings: Settings) -> list[Check]:
    client = doctor_client(settings)
    where = (settings.redis.sentinels and primary_of(settings.redis).where) or \
        urlsplit(settings.redis.url).netloc.split("@")[-1]
    try:
        await client.ping()
        conf = {}
        for key in ("appendonly", "appendfsync", "maxmemory-policy"):
            conf.update(await client.config_get(key))
    except Exception as exc:  # any failure here is the finding
        return [Check("redis", "FAIL", f"cannot reach Redis at {where}: {reason(exc, 3)}")]
    finally:
        await client.aclose()
    found = [Check("redis", "OK", f"{where} answers")]
    durable = conf.get("appendonly") == "yes" and conf.get("appendfsync") == "always"
    found.append(Check("redis persistence", "OK" if durable else "WARN",
                       f"appendonly={conf.get('appendonly')} appendfsync="
                       f"{conf.get('appendfsync')}" + ("" if durable else
                       ": a crash may lose callbacks; set appendonly yes, appendfsync always")))
    noevict = conf.get("maxmemory-policy") == "noeviction"
    found.append(Check("redis eviction", "OK" if noevict else "WARN",
                       f"maxmemory-policy={conf.get('maxmemory-policy')}" +
                       ("" if noevict else ": tasks could be evicted; set noeviction")))
    return found


async def check_quarantine(settings: Settings) -> Check:
    """Records the dispatcher set aside because they cannot be read (store/quarantine.py)."""
    client = doctor_client(settings)
    try:
        entries = await Quarantine(client, Keys(settings.redis.prefix)).entries()
    except Exception as exc:  # any failure here is the finding
        return Check("quarantine", "WARN", f"not read: {type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
    if not entries:
        return Check("quarantine", "OK", "no record set aside")
    shown = "; ".join(f"{q.kind} {q.record_id}: {q.reason}" for q in entries[:20])
    more = f" (and {len(entries) - 20} more)" if len(entries) > 20 else ""
    return Check("quarantine", "WARN", f"{len(entries)} record(s) set aside, not served: "
                 f"{shown}{more}; fix or delete each hash, then HDEL it from "
                 f"{settings.redis.prefix}:{{pool}}:quarantine")


async def check_lease(settings: Settings) -> Check:
    """Which serve is active for this node's ARI app, and which wait as standbys
    (docs/standby.md)."""
    client = doctor_client(settings)
    try:
        node = node_id(settings)
        lease = NodeLease(client, Keys(settings.redis.prefix), None, node, settings.ari.app)
        state = await lease.state()
    except Exception as exc:  # any failure here is the finding
        return Check("serve lease", "WARN", f"not read: {type(exc).__name__}: {exc}")
    finally:
        await client.aclose()
    what = f"node {node}, app {settings.ari.app}"
    standbys = "; standby: " + ", ".join(map(shown, state.standbys)) if state.standbys else ""
    if not state.holder:
        return Check("serve lease", "WARN", f"{what}: no serve is active{standbys}")
    return Check("serve lease", "OK", f"{what}: active {shown(state.holder)} (epoch "
                 f"{state.epoch}, {state.ttl_ms / 1000:.1f} s left){standbys or '; no standby'}")


def check_redis_acl(settings: Settings) -> Check:
    """WARN unless acdkit logs in to Redis as an ACL user of its own, even on loopback:
    whoever can write to Redis decides what acdkit dials (docs/security-policy.md)."""
    url = urlsplit(settings.redis.url)
    fix = ("give acdkit an ACL user limited to the acdkit:* and rq:* keys and put it in "
           "redis.url (docs/security-policy.md)")
    if not url.password:
        return Check("redis acl", "WARN", f"redis.url has no password: anyone who can reach "
                     f"Redis can make acdkit dial; {fix}")
    if not url.username or url.username == "default":
        return Check("redis acl", "WARN", f"acdkit logs in as Redis's default user; {fix}")
    return Check("redis acl", "OK", f"ACL user {url.username!r}")


async def check_ari(settings: Settings, seconds: float = 5.0) -> tuple[list[Check], str]:
    a = settings.ari
    headers = {"Authorization": aiohttp.encode_basic_auth(a.username, a.password.reveal())}
    timeout = aiohttp.ClientTimeout(total=seconds)
    where = str(URL(a.url).with_user(None))  # credentials in the URL: ignored, never printed
    try:
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as http, \
                http.get(f"{where.rstrip('/')}/ari/asterisk/info") as resp:
            if resp.status == 401:
                return [Check("ari", "FAIL", f"ARI at {where} refused user {a.username!r}: "
                              "wrong ARI username or password (ari.username/ari.password)")], ""
            if resp.status != 200:
                return [Check("ari", "FAIL", f"ARI at {where} answered {resp.status}")], ""
            info = await resp.json()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return [Check("ari", "FAIL", f"cannot reach ARI at {where}: {reason(exc, seconds)}"
                      " (is http.conf enabled and Asterisk running?)")], ""
    version = str(info.get("system", {}).get("version", ""))
    found = [Check("ari", "OK", f"{where} as {a.username}, Asterisk {version}")]
    found.append(await check_ari_websocket(settings))
    return found, version


async def check_ari_websocket(settings: Settings) -> Check:
    a = settings.ari
    client = AriClient(a.url, a.username, a.password.reveal(), f"{a.app}-doctor",
                       request_timeout=3.0)

    async def ignore(event: object) -> None:
        return None

    runner = asyncio.create_task(client.run(ignore))
    try:
        await client.wait_connected(6.0)
        transport = client.transport
    except AcdError as exc:
        return Check("ari transport", "FAIL", f"events WebSocket failed: {exc}")
    finally:
        await client.close()
        await runner
    if transport == "websocket":
        return Check("ari transport", "OK", "REST over the events WebSocket")
    return Check("ari transport", "WARN", "this Asterisk has no REST over WebSocket "
                 "(20.14/21.9/22.4 or later): using HTTP for requests")


def check_version(version: str) -> Check:
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if not match:
        return Check("asterisk version", "WARN", f"cannot read version {version!r}")
    parts = tuple(int(p) for p in match.groups())
    hits = [name for name, fixed in ADVISORIES
            if parts[0] in fixed and parts < fixed[parts[0]]]
    if parts[0] < 20:
        hits.append("branch no longer supported")
    if hits:
        return Check("asterisk version", "WARN", f"{version}: UPGRADE — " + "; ".join(hits))
    return Check("asterisk version", "OK", f"{version}: no known ARI/AMI advisory")


async def check_ami(settings: Settings, seconds: float = 5.0) -> list[Check]:
    """Log in to AMI; then ask for a harmless CLI command to learn whether this user may run
    any (``write=command``): acdkit only needs ``originate`` and ``call``. Each step waits
    ``seconds`` at most."""
    m = settings.ami
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(m.host, m.port),
                                                seconds)
    except (OSError, TimeoutError) as exc:
        return [Check("ami", "FAIL", f"cannot reach AMI at {m.host}:{m.port}: "
                      f"{reason(exc, seconds)}")]
    try:
        await asyncio.wait_for(reader.readline(), seconds)  # the banner
        reply = await _ami_exchange(reader, writer, f"Action: Login\r\nUsername: {m.username}"
                                    f"\r\nSecret: {m.secret.reveal()}\r\nEvents: off",
                                    seconds)
        if "Response: Success" not in reply:
            return [Check("ami", "FAIL", f"AMI refused user {m.username!r}: wrong AMI username "
                          "or secret (ami.username/ami.secret)")]
        try:
            probe = await _ami_exchange(reader, writer,
                                        "Action: Command\r\nCommand: core show uptime", seconds)
        except (TimeoutError, asyncio.IncompleteReadError):
            probe = ""
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        return [Check("ami", "FAIL", f"AMI at {m.host}:{m.port} did not answer the login: "
                      f"{reason(exc, seconds)}")]
    finally:
        writer.close()
    found = [Check("ami", "OK", f"{m.host}:{m.port} as {m.username}")]
    if "Response: Success" in probe:
        found.append(Check("ami privileges", "WARN", f"AMI user {m.username!r} may run any CLI "
                           "command (write=command in manager.conf): acdkit needs only "
                           "originate and call"))
    elif "Response: Error" in probe:
        found.append(Check("ami privileges", "OK", "no CLI commands (write=command) allowed"))
    else:
        found.append(Check("ami privileges", "WARN", "no answer to a Command probe: check that "
                           "manager.conf does not give this user write=command"))
    return found


async def _ami_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        action: str, seconds: float) -> str:
    writer.write(f"{action}\r\n\r\n".encode())
    await writer.drain()
    return (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), seconds)).decode(
        errors="replace")


def check_addresses(settings: Settings) -> list[Check]:
    """Where ARI, AMI, FastAGI, the media endpoint and Redis are reachable (acdkit.exposure),
    and credentials written where they do not belong."""
    found = []
    for endpoint in exposure.endpoints(settings):
        status, detail = exposure.judge(endpoint)
        found.append(Check(f"{endpoint.name} address", status, detail))
    found += [Check("credentials", "WARN", problem)
              for problem in exposure.credentials_in_urls(settings)]
    found.append(check_web(settings))
    return found


def check_web(settings: Settings) -> Check:
    """The pages carry PINs, passwords and session cookies: off loopback they need TLS."""
    w = settings.web
    host = w.listen.rpartition(":")[0].strip("[]")
    tls = bool(w.tls_cert and w.tls_key)
    if exposure.is_loopback(host) or tls:
        return Check("web address", "OK", f"{w.listen}" + (" with TLS" if tls else
                                                           " (loopback)"))
    return Check("web address", "WARN", f"acdkit web listens on {w.listen} without TLS: PINs, "
                 "passwords and session cookies cross the network in clear; set web.tls_cert "
                 "and web.tls_key (or keep 127.0.0.1 behind a TLS proxy)")
