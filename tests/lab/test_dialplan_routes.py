"""The optional dialplan-mode routes on the lab's app_queue, through extension 210 of
dialplan/extensions_acdkit.conf: choose-agent before Queue(sales) (a menu of free members,
the caller's key picks one, Dial() rings it), survey after the agent hung up (Queue() option
c, or Dial() option g) and voice-request at the overflow point (RECORD FILE, then the
transcription and work-order pipeline). `acdkit agi` runs as a process, SIPp plays the
caller, the queue members agent1-3 and nothing else."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.lab.center import cli_json, eventually
from tests.lab.conftest import Worker
from tests.lab.test_dialplan_mode import Agi, agi_process
from tests.sipp.audiopcap import speech_pcap

from acdkit.labkit.sipp import agent_peer, caller

pytestmark = pytest.mark.lab

CUSTOMER = "2125550147"
MEMBERS = {"agent1", "agent2", "agent3"}
# The caller hears the members' menu (ratings.choose_agent = 3), best-rated first: none is
# rated yet, so agent1 = 1, agent2 = 2, agent3 = 3; 0 = no choice, Queue() rings them all.
MENU = {"ACDKIT_RATINGS_CHOOSE_AGENT": "3", "ACDKIT_RATINGS_KEY_TIMEOUT": "6"}
# Each choice is keyed twice (the second is ignored, or taken if the route was not listening
# yet). Then one key a little over each second: the survey's intro ignores keys, each
# question takes the first one, and keys during the call only reach the agent.
KEYS = "ww"


@pytest.fixture
def agi(lab: Path, redis_url: str, tmp_path: Path) -> Iterator[Agi]:
    yield from agi_process(redis_url, tmp_path)


def agent_ratings(agi: Agi) -> dict[str, dict[str, Any]]:
    """`acdkit ratings --json`, by agent."""
    return {row["id"]: row for row in cli_json(agi, "ratings")}


def survey_keys(first: str, score: str, count: int = 36) -> str:
    return first + (score + KEYS) * count


def test_the_caller_rates_the_queue_member_after_it_hung_up(agi: Agi, tmp_path: Path) -> None:
    """210, 0 in the menu (no choice): Queue(sales,c) rings the members, one answers and
    hangs up after 3 s; the caller continues into the survey and keys 4 to every question."""
    agi.extra_env.update(MENU)
    with agent_peer(workdir=tmp_path / "agents", hangup="*", hangup_after=3) as agents:
        agi.start()
        assert not any(r["ratings"] for r in agent_ratings(agi).values())
        result = caller("210", dtmf=survey_keys("ww0ww0", "4"), caller_id=CUSTOMER,
                        timeout=60).run()
        assert result.ok, result
        assert result.hung_up_by == "remote"  # the dialplan hung up after the survey
        invites = agents.invites()
    assert {i.user for i in invites} <= MEMBERS
    rated = re.findall(rf"AGI survey: {CUSTOMER} rated (agent\d) ", agi.log())
    assert len(rated) == 1, agi.log()
    row = agent_ratings(agi)[rated[0]]
    assert row["ratings"] == 1, row
    assert {c: s["mean"] for c, s in row["categories"].items()} == {
        "attitude": 4.0, "expertise": 4.0, "availability": 4.0}, row
    assert rated[0] in {i.user for i in invites}  # rung by Queue(), which rings them all


def test_the_caller_picks_a_member_and_rates_it(agi: Agi, tmp_path: Path) -> None:
    """210, 2 in the menu: choose-agent sets ACDKIT_AGENT=PJSIP/agent2, Dial() rings only
    agent2; it hangs up after 2 s and the caller rates it 3 (ACDKIT_MEMBER: no MEMBERNAME
    outside Queue())."""
    agi.extra_env.update(MENU)
    with agent_peer(workdir=tmp_path / "agents", hangup="*", hangup_after=2) as agents:
        agi.start()
        result = caller("210", dtmf=survey_keys("ww2ww2", "3"), caller_id=CUSTOMER,
                        timeout=60).run()
        assert result.ok, result
        assert [i.user for i in agents.invites()] == ["agent2"]
    assert "AGI choose-agent: agent2 (PJSIP/agent2) for queue sales" in agi.log()
    rows = agent_ratings(agi)
    assert rows["agent2"]["ratings"] == 1, rows
    assert rows["agent2"]["categories"]["attitude"]["mean"] == 3.0, rows
    assert not any(r["ratings"] for name, r in rows.items() if name != "agent2"), rows


SENTENCE = "my printer is broken please send a technician"


@pytest.fixture
def worker(agi: Agi, tmp_path: Path) -> Iterator[Worker]:
    agi.extra_env.update({"ACDKIT_REQUESTS_AUDIO_DIR": str(tmp_path / "audio"),
                          "ACDKIT_REQUESTS_MAX_SILENCE": "6"})
    started = Worker(agi, tmp_path / "worker.log").start()
    yield started
    started.stop()
    sys.stdout.write(f"\n--- worker log ---\n{started.log_path.read_text()[-4000:]}\n")


def test_a_voice_request_is_recorded_at_the_overflow_point(agi: Agi, worker: Worker,
                                                            tmp_path: Path) -> None:
    """210 with no member answering: 0 in the menu (if it plays), Queue() times out after
    20 s, the voice-request route reads the number back (1 = right), the caller speaks after
    the beep and presses #; the request is stored with its audio and transcribed."""
    agi.extra_env.update(MENU)
    agi.start()
    # t=1 s: 0 (again at 2 s); in Queue() until ~21 s; the read-back from ~22 s: 1 at ~25 s;
    # the prompt (5.5 s) and the beep; the sentence from ~32 s, then #.
    pcap = speech_pcap(SENTENCE, before="ww0ww0" + "w" * 46 + "1" + "w" * 14, after="#")
    # Members ring unanswered: app_queue's INVITEs get answers instead of being retransmitted
    # into the next test's agents.
    with agent_peer(workdir=tmp_path / "agents", noanswer="*"):
        result = caller("210", media=pcap, caller_id=CUSTOMER, timeout=80).run()
    assert result.ok, result
    assert result.hung_up_by == "remote"  # acdkit-goodbye after "stored"
    [request] = eventually(lambda: [r for r in _requests(agi)
                                    if r["status"] != "transcribing"], 90, every=0.5,
                           what="the transcript")
    assert request["number"] == f"+1{CUSTOMER}", request
    assert request["status"] == "transcribed", request
    assert request["task"] == "queued", "the work order is released once transcribed"
    assert (tmp_path / "audio" / request["audio"]).stat().st_size > 16_000  # > 1 s
    words = request["transcript"].lower()
    assert "printer" in words and "broken" in words, words
    assert "FastAGI: voice-request on" in agi.log()


def _requests(agi: Agi) -> list[dict[str, Any]]:
    return list(json.loads(agi.cli("requests", "list", "--json").stdout))
