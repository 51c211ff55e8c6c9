"""`acdkit serve` against the lab: a call in and out of the app, an Asterisk restart under
it, `acdkit doctor`, and what a caller gets when serve is not running (docs/architecture.md
§4, invariant 6, and §2: never strand a caller)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.lab.center import FAST, add_agents, eventually, task_story, tasks
from tests.lab.conftest import ROOT, Serve, ari_get, lab_channels, lab_settings
from tests.lab.rtp import RtpSniffer
from tests.lab.test_kpis_lab import scrape

from acdkit.ari.client import WANTED_ALWAYS
from acdkit.ari.events import HANDLED
from acdkit.labkit.sipp import Peer, agent_peer, caller

pytestmark = pytest.mark.lab

RECONNECT_WITHIN = 10.0


def _channel_of(log: str, number: str) -> str:
    """The id of the channel serve queued for caller ``number``."""
    found = re.findall(rf"queued for \w+ \(caller {number}, channel (\S+)\)", log)
    assert len(found) == 1, f"queued from {number}: {found}\n{log}"
    return found[0]


def test_a_call_enters_and_leaves_the_app(serve: Serve) -> None:
    """The app answers, plays the menu, queues the caller (no agent); the caller hangs up:
    the channel enters and leaves the app and its task ends abandoned. serve asked Asterisk
    for the events it acts on only (ari/events.py HANDLED) and received no other."""
    serve.extra_env.update(FAST)
    serve.start()
    with RtpSniffer() as rtp:
        result = caller("100", dtmf="1", hangup_after=3, caller_id="4930100001",
                        timeout=15).run()
    assert result.ok, result
    assert result.first_time(200, sent=False) is not None
    assert result.hung_up_by == "local"
    assert len(rtp.packets) > 50, "the caller heard nothing (no RTP from Asterisk in 3 s)"
    channel = _channel_of(serve.log(), "4930100001")
    eventually(lambda: channel not in {c["id"] for c in lab_channels()}, 5,
               what=f"channel {channel} gone")
    [task] = eventually(lambda: [t for t in tasks(serve) if t["state"] == "abandoned"],
                        5, what="the task abandoned")
    assert (task["number"], task["skill"], task["agent"]) == ("4930100001", "sales", None)
    _, history = task_story(serve, task["id"])
    assert [h["event"] for h in history] == ["add", "abandon"]
    # serve asked Asterisk for the events it acts on only, and got no other.
    status, app = ari_get(f"applications/{lab_settings()['ari']['app']}")
    assert status == 200 and isinstance(app, dict), (status, app)
    allowed = {entry["type"] for entry in app["events_allowed"]}
    assert allowed == HANDLED | WANTED_ALWAYS, allowed
    got = {dict(labels)["type"] for (name, labels), n in scrape().items()
           if name == "acdkit_ari_events_total" and n}
    assert {"StasisStart", "StasisEnd"} <= got <= HANDLED, got


def test_serve_survives_an_asterisk_restart(serve: Serve, phones: Callable[..., Peer]) -> None:
    serve.extra_env.update(FAST)
    serve.start()
    add_agents(serve, "1")
    before = serve.registrations()
    restart = time.monotonic()
    subprocess.run(["bash", "-c", "source scripts/podman-env.sh && "
                    "bash scripts/lab-restart-asterisk.sh"], cwd=ROOT, check=True,
                   capture_output=True)
    back = time.monotonic()
    took = serve.wait_registered(RECONNECT_WITHIN, more_than=before)
    log = serve.log()
    assert "ARI disconnected" in log and "ARI reconnect" in log, log
    print(f"Asterisk restarted in {back - restart:.1f} s; serve registered again "
          f"{took:.1f} s after it was back")

    agents = phones()
    result = caller("100", dtmf="1", hangup_after=3, caller_id="4930100002", timeout=15).run()
    assert result.ok, result
    [invite] = agents.wait_for_invites(1)
    assert (invite.user, invite.from_user) == ("agent1", "4930100002")
    [task] = eventually(lambda: [t for t in tasks(serve) if t["state"] == "completed"], 5,
                        what="the task completed")
    assert (task["number"], task["agent"]) == ("4930100002", "1")


def test_doctor_names_a_wrong_ari_password(serve: Serve) -> None:
    wrong = serve.cli("doctor", check=False, env={"ACDKIT_ARI_PASSWORD": "wrong"})
    assert wrong.returncode != 0
    assert "wrong ARI username or password" in wrong.stdout + wrong.stderr

    right = serve.cli("doctor", "--json", check=False)
    status = {row["check"]: row["status"] for row in json.loads(right.stdout)}
    assert status["ari"] == status["ari transport"] == status["ami"] == "OK", status
    # Install checks see this host: no worker runs in this test (a FAIL of its own).
    failed = [check for check, said in status.items() if said == "FAIL"]
    assert status["redis"] == "OK" and failed in ([], ["process worker"]), status
    assert right.returncode == (1 if failed else 0), right.stdout + right.stderr


def test_without_serve_a_caller_reaches_the_fallback_queue(lab: object, tmp_path: Path) -> None:
    """No app connected: Stasis() fails, the dialplan answers, apologises and queues the
    caller in Queue(sales), which rings the agents' phones (agent1-3, here never answering:
    an INVITE nobody answers would be retransmitted into the next tests' phones)."""
    apps: list[str] = []
    call = caller("100", hangup_after=7, caller_id="4930100003", timeout=20)
    done = threading.Event()

    def watch() -> None:  # what the caller's channel runs, until it is in Queue() or gone
        while not done.is_set() and "Queue" not in apps:
            for channel in lab_channels():
                if channel.get("caller", {}).get("number") == "4930100003":  # type: ignore[union-attr]
                    app = channel.get("dialplan", {}).get("app_name")  # type: ignore[union-attr]
                    if app and (not apps or apps[-1] != app):
                        apps.append(str(app))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    with agent_peer(noanswer="*", workdir=tmp_path / "agents") as phones, \
            RtpSniffer() as rtp:
        watcher.start()
        result = call.run()
        done.set()
        watcher.join()
        eventually(lambda: not phones.open_calls(), 5, what="the queue's ringing ended")
    assert result.ok, result
    assert result.first_time(200, sent=False) is not None  # answered, not left ringing
    assert len(rtp.packets) > 100, "the caller heard nothing"
    assert "Queue" in apps, apps
    rung = phones.invites()
    assert {i.user for i in rung} == {"agent1", "agent2", "agent3"}, rung
    assert {i.from_user for i in rung} == {"4930100003"}
