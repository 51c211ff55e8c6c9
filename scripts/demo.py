"""`make demo`: the mission's main story on the lab, printed as a timeline.

1. Agent 1 signs in (its phone is a SIPp peer at 127.0.0.3) and takes a first caller.
2. While it is busy, a second caller waits, is offered a callback, presses 1 and confirms its
   number; it is hung up with a reference.
3. The agent frees: the worker calls the agent first, then the customer (a SIPp peer on the
   pstn trunk at 127.0.0.4), and both are bridged.
4. A third caller books a callback for a time a minute ahead (HHMM by DTMF); it is dialed on
   time.

Runs `acdkit serve` and `acdkit worker` from .venv against the lab (asterisk/acdkit.toml).
Every process it starts (serve, worker, SIPp peers and callers) is ended on every way out,
Ctrl-C and SIGTERM included; a run killed outright is cleaned up by the next one
(acdkit.labkit.procs).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from acdkit.config import load_settings
from acdkit.labkit.procs import ProcessGroup
from acdkit.labkit.sipp import Peer, agent_peer, caller, customer_peer
from acdkit.store.connection import connect

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "asterisk" / "acdkit.toml"
LOGS = ROOT / "var" / "demo"
ENV = {**os.environ, "ACDKIT_CONFIG": str(CONFIG)}
WEB = load_settings(CONFIG, ENV).web.listen
MEDIA = load_settings(CONFIG, ENV).requests.media_listen
START = time.time()


def say(text: str) -> None:
    print(f"  +{time.time() - START:6.1f}s  {text}", flush=True)


def acdkit(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "acdkit", *args], env=ENV, text=True,
                          capture_output=True, check=True)
    return done.stdout.strip()


def background(group: ProcessGroup, name: str, *args: str) -> subprocess.Popen[bytes]:
    return group.start([sys.executable, "-m", "acdkit", "-v", *args], env=ENV,
                       log=LOGS / f"{name}.log")


async def reset_pool() -> None:
    settings = load_settings(CONFIG, ENV)
    redis = await connect(settings.redis.url)
    keys = [k async for k in redis.scan_iter(f"{settings.redis.prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def wait_registered(timeout: float = 15.0) -> None:
    """Until serve logs that its ARI app is registered (Asterisk keeps listing an app for a
    while after its WebSocket is gone, so the application list proves nothing)."""
    deadline = time.monotonic() + timeout
    log = LOGS / "serve.log"
    while time.monotonic() < deadline:
        if "registered; requests over" in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise SystemExit(f"acdkit serve did not register; see {log}")


def tasks() -> str:
    return acdkit("tasks", "list")


def main() -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    print("acdkit demo: a caller overflows to a callback and is called back, agent first\n")
    with contextlib.ExitStack() as stack:
        # Started in this order, ended in the reverse one (peers before serve and worker),
        # whichever way the demo ends.
        group = stack.enter_context(ProcessGroup(LOGS / "pids"))
        asyncio.run(reset_pool())
        acdkit("agents", "add", "1", "--name", "Alice", "--pin", "1234", "--skill", "sales")
        acdkit("agents", "login", "1", "--reach", "PJSIP/agent1")
        say("agent 1 (Alice) signed in, reachable at PJSIP/agent1 (a SIPp phone at 127.0.0.3)")
        background(group, "serve", "serve")
        background(group, "worker", "worker")
        background(group, "web", "web")
        agents = stack.enter_context(agent_peer(hangup={"agent1"}, hangup_after=30))
        customers = stack.enter_context(customer_peer(hangup="*", hangup_after=4))
        wait_registered()
        say("acdkit serve connected to ARI; acdkit worker listening on RQ")
        say(f"watch it live: http://{WEB}/wallboard (and /supervisor after "
            f"`acdkit users add NAME`); metrics at http://{MEDIA}/metrics")
        story(stack, agents, customers)
        scheduled(stack, customers)
        say(wallboard())
        say("the day so far, as `acdkit stats` computes it (docs/kpis.md):")
        print(indent(acdkit("stats", "--since", "today")))
    print(f"\nlogs: {LOGS}/serve.log, {LOGS}/worker.log, {LOGS}/web.log")
    return 0


def story(stack: contextlib.ExitStack, agents: Peer, customers: Peer) -> None:
    first = stack.enter_context(caller("100", dtmf="1", caller_id="12125550111", timeout=60))
    agents.wait_for_invites(1, timeout=20)
    say("caller +12125550111 pressed 1 (sales) and is talking to agent 1")
    time.sleep(1)
    # The second caller waits, hears the offer, presses 1 (callback), confirms its number.
    second = stack.enter_context(caller("100", dtmf="1" + "w" * 18 + "1" + "w" * 8 + "1",
                                        caller_id="12125550123", timeout=60))
    say("caller +12125550123 pressed 1 (sales): agent busy, waiting with music")
    time.sleep(1.5)  # the wallboard shows a change within a second
    say(wallboard())
    result = second.wait(60)
    say(f"caller +12125550123 chose an instant callback, confirmed its number, and was "
        f"hung up by acdkit ({'ok' if result.ok else 'FAILED'})")
    print(indent(tasks()))
    first.wait(60)
    say("the first call ended; agent 1 wraps up, then is ready")
    invite = customers.wait_for_invites(1, timeout=60)[0]
    agent_invites = agents.invites()
    say(f"worker dialed agent 1 first (INVITE at +{agent_invites[-1].time - START:.1f}s), "
        f"then the customer {invite.user} (INVITE at +{invite.time - START:.1f}s)")
    time.sleep(6)
    say("customer and agent were bridged; the customer hung up after 4 s")
    print(indent(acdkit("callbacks", "list")))


def scheduled(stack: contextlib.ExitStack, customers: Peer) -> None:
    tz = ZoneInfo(load_settings(CONFIG, ENV).center.timezone)
    when = (datetime.now(tz) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    hhmm = when.strftime("%H%M")
    acdkit("agents", "pause", "1", "--reason", "break")
    say("agent 1 takes a break (paused, reason: break): the next caller will wait")
    third = stack.enter_context(caller("100", dtmf="1" + "w" * 18 + "2" + "w" * 8 + "1"
                                       + "w" * 12 + hhmm + "w" * 10 + "1",
                                       caller_id="12125550177", timeout=90))
    say(f"caller +12125550177 asks for a callback at {hhmm} ({when:%H:%M %Z})")
    third.wait(90)
    print(indent(acdkit("callbacks", "list")))
    acdkit("agents", "resume", "1")
    say("agent 1 is back (ready); the scheduled callback waits for its time")
    got = customers.wait_for_invites(2, timeout=240)[-1]
    late = got.time - when.timestamp()
    say(f"scheduled callback dialed {got.user} at "
        f"{datetime.fromtimestamp(got.time, tz):%H:%M:%S} ({late:+.1f}s from its time)")
    time.sleep(6)
    print(indent(acdkit("callbacks", "list")))


BOARD_COLUMNS = ("waiting", "longest wait", "service level", "ASA", "abandoned",
                 "callbacks pending", "callbacks due", "voice requests", "ready", "on call")


def wallboard(skill: str = "sales") -> str:
    """The wallboard's row for ``skill`` as `acdkit web` serves it to a browser now."""
    try:
        with urllib.request.urlopen(f"http://{WEB}/wallboard", timeout=5) as page:
            html = page.read().decode()
    except OSError as err:
        return f"wallboard: not reachable ({err}); see {LOGS}/web.log"
    row = re.search(rf'<tr data-skill="{skill}">(.*?)</tr>', html, re.S)
    if row is None:
        return f"wallboard: no row for {skill} yet"
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in row.group(1).split("</td>")][1:-1]
    shown = ", ".join(f"{name} {value}" for name, value in zip(BOARD_COLUMNS, cells,
                                                              strict=False))
    return f"wallboard ({skill}): {shown}"


def indent(text: str) -> str:
    return "\n".join("        " + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
