"""The pages in a real Chromium against the lab (docs/pages.md): a SIPp call on the
wallboard within 2 s, Ready on the agent page connecting a waiting SIPp caller, a pause
reason on the wallboard and in `acdkit stats`, a voice request's transcript on the page and
a typed answer delivered to the SIPp customer, a supervisor listening to a live call from a
SIPp phone, and what is refused (a wrong PIN, an agent on the supervisor page).

Each test saves screenshots under tests/artifacts/; page weights are printed (`-s`)."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.lab.browser import CHROMIUM, FLAGS, ROOT, Traffic, WebProcess, shot, sign_in
from tests.lab.center import FAST, add_agents, agents, eventually, task_story, tasks
from tests.lab.conftest import Serve, Worker
from tests.lab.rtp import RtpSniffer, pcmu_heard
from tests.lab.test_voice_requests import CUSTOMER, SENTENCE, requests, submit
from tests.sipp.audiopcap import speech_pcap

from acdkit.labkit.sipp import agent_peer, caller, customer_peer
from acdkit.speech import audio

pytestmark = pytest.mark.lab

DOCS_IMG = ROOT / "docs" / "img"
PIN = "1234"
SALES = "[data-skill=sales] .waiting"


@pytest.fixture
def pages(serve: Serve, tmp_path: Path) -> Iterator[WebProcess]:
    web = WebProcess(serve, tmp_path / "web.log")
    yield web
    web.stop()
    if web.log_path.exists():
        sys.stdout.write(f"\n--- web log ---\n{web.log_path.read_text()[-3000:]}\n")


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Per test, set up after ``serve`` and the phones: Playwright's sync API runs an event
    loop, and their clean-up (``hang_up_all``) runs one of its own once the browser is gone."""
    with sync_playwright() as playwright:
        made = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield made
        made.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    yield context.new_page()
    context.close()


def count_fragments(page: Page) -> None:
    """``window.fragments``: how many live fragments the page's stream has swapped in."""
    page.add_init_script("window.fragments = 0; document.addEventListener("
                         "'htmx:sseMessage', () => { window.fragments += 1; });")


def wait_fragments(page: Page, count: int, timeout: float = 5.0) -> None:
    """Until the page has swapped in ``count`` fragments. Not ``wait_for_function``: its
    polling evaluates text, which the pages' Content-Security-Policy refuses."""
    page.evaluate("""([count, ms]) => new Promise((done, fail) => {
        const end = Date.now() + ms;
        const check = () => window.fragments >= count ? done()
            : Date.now() > end ? fail(new Error(`${window.fragments} of ${count} fragments`))
            : setTimeout(check, 20);
        check();
    })""", [count, timeout * 1000])


def busy_center(serve: Serve, env: dict[str, str] | None = None) -> None:
    """Agent 1 (sales, PIN 1234) signed in at PJSIP/agent1 and paused: callers wait."""
    serve.extra_env.update({**FAST, **(env or {})})
    add_agents(serve, "1")
    serve.cli("agents", "pause", "1", "--reason", "break")
    serve.start()


def keep_doc_image(path: Path, name: str) -> None:
    """The README's screenshots are taken by these tests (copied once, then kept)."""
    target = DOCS_IMG / name
    if not target.exists():
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


def test_a_call_shows_on_the_wallboard_within_2_s(serve: Serve, pages: WebProcess,
                                                  page: Page) -> None:
    busy_center(serve)
    pages.start()
    traffic = Traffic().watch(page)
    page.goto(f"{pages.url}/wallboard")
    page.wait_for_selector("[data-reason=break]")
    first_load = sum(traffic.finished.values())
    sipp = caller("100", dtmf="1", hangup_after=6, caller_id="4930400001").start()
    try:
        page.wait_for_selector(f"{SALES}:text-is('1')", timeout=20_000)
        seen = time.time()
        [task] = [t for t in tasks(serve) if t["number"].endswith("4930400001")]
        _, history = task_story(serve, task["id"])
        lag = seen - float(history[0]["ts"])  # the task joined the queue
        shot_path = shot(page, "wallboard-call")
        assert lag < 2.0, f"the call showed {lag:.2f} s after it joined the queue"
        stream_before, updates = traffic.stream_bytes, traffic.messages
    finally:
        assert sipp.wait(30).ok
    page.wait_for_selector(f"{SALES}:text-is('0')", timeout=10_000)
    per_update = (traffic.stream_bytes - stream_before) / max(1, traffic.messages - updates)
    print(f"\nPAGE WEIGHT wallboard first load {first_load} B; SSE {per_update:.0f} B per "
          f"update; call shown {lag:.2f} s after it queued")
    keep_doc_image(shot_path, "wallboard.png")


def test_wrong_pin_refused_then_ready_connects_the_waiting_caller(
        serve: Serve, phones: Any, pages: WebProcess, page: Page) -> None:
    busy_center(serve)
    pages.start()
    phone = phones()
    sign_in(page, pages.url, "1", "9999")
    assert "Wrong agent id or PIN" in page.content()
    shot(page, "agent-wrong-pin")
    assert page.goto(f"{pages.url}/agent/").url.endswith("/agent")  # not signed in
    sipp = caller("100", dtmf="1", hangup_after=10, caller_id="4930400002").start()
    try:
        eventually(lambda: [t for t in tasks(serve) if t["state"] == "queued"], 15,
                   what="the caller queued")
        sign_in(page, pages.url, "1", PIN)
        page.wait_for_selector("#state.paused")
        page.click("#ready")
        [invite] = phone.wait_for_invites(1, timeout=15)
        assert (invite.user, invite.from_user) == ("agent1", "4930400002")
        page.wait_for_selector("#state.on_call", timeout=10_000)
        page.wait_for_selector("#number:has-text('4930400002')")
        keep_doc_image(shot(page, "agent-on-call"), "agent.png")
        # An agent's session does not open the supervisor page.
        response = page.goto(f"{pages.url}/supervisor/")
        assert response is not None and response.status == 403
    finally:
        assert sipp.wait(30).ok


def test_a_pause_reason_shows_on_the_wallboard_and_in_stats(
        serve: Serve, pages: WebProcess, browser: Browser) -> None:
    busy_center(serve)
    serve.cli("agents", "resume", "1")
    pages.start()
    agent_page, board = browser.new_page(), browser.new_page()
    try:
        board.goto(f"{pages.url}/wallboard")
        board.wait_for_selector("[data-state=ready]")
        count_fragments(agent_page)
        sign_in(agent_page, pages.url, "1", PIN)
        wait_fragments(agent_page, 1)  # the stream's first
        agent_page.select_option("#pause-reason", "lunch")
        # A fragment arrives between the choice and the click: the choice stays, and the
        # mode select, which the agent did not touch, shows the new mode.
        serve.cli("agents", "mode", "1", "persistent")
        wait_fragments(agent_page, 2)
        assert agent_page.input_value("#pause-reason") == "lunch"
        assert agent_page.input_value("select[name=mode]") == "persistent"
        agent_page.click("#pause")
        agent_page.wait_for_selector("#reason:has-text('lunch')")
        board.wait_for_selector("[data-reason=lunch]", timeout=3_000)
        shot(board, "wallboard-paused")
        shot(agent_page, "agent-paused")
    finally:
        agent_page.close()
        board.close()
    [stats] = json.loads(serve.cli("stats", "--json").stdout)
    [sales] = stats["skills"]
    assert sales["paused"] == 1 and sales["pause_reasons"] == {"lunch": 1}, sales
    assert agents(serve)["1"]["state"] == "paused"


@pytest.fixture
def voice_center(serve: Serve, tmp_path: Path) -> Iterator[Serve]:
    from tests.lab.test_voice_requests import VOICE

    busy_center(serve, {**VOICE, "ACDKIT_REQUESTS_AUDIO_DIR": str(tmp_path / "audio")})
    worker = Worker(serve, tmp_path / "worker.log").start()
    yield serve
    worker.stop()


def test_a_voice_request_is_read_on_the_page_and_answered_by_text(
        voice_center: Serve, pages: WebProcess, page: Page, redis_url: str,
        tmp_path: Path) -> None:
    serve = voice_center
    pages.start()
    # submit() runs its own event loop: not in this thread, where Playwright runs one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(submit, redis_url, tmp_path / "audio").result(30)
    eventually(lambda: [r for r in requests(serve) if r["task"] == "queued"], 60, every=0.5,
               what="the transcript")
    with agent_peer() as phone, customer_peer() as customers:
        phone.start()
        customers.start()
        sign_in(page, pages.url, "1", PIN)
        page.click("#ready")
        phone.wait_for_invites(1, timeout=30)
        page.wait_for_selector("#transcript", timeout=10_000)
        words = page.inner_text("#transcript").lower()
        assert "printer" in words and "broken" in words, words
        shot(page, "agent-voice-request")
        page.fill("#answer", "A technician will visit you on Monday morning")
        page.click("#send-answer")
        page.wait_for_selector("#note:has-text('Answer saved')")
        [call] = customers.wait_for_invites(1, timeout=60)
        assert call.user == CUSTOMER
        eventually(lambda: [r for r in requests(serve) if r["status"] == "delivered"], 60,
                   every=0.5, what="the answer delivered")
    [request] = requests(serve)
    assert request["reply_kind"] == "text" and request["replied_by"] == "1", request
    assert "Monday" in request["reply_text"]


SUPERVISOR_PHONE = "2125550177"  # an outside number: the lab's pstn trunk, SIPp at .4


def test_a_supervisor_listens_to_a_live_call(serve: Serve, phones: Any, pages: WebProcess,
                                             page: Page) -> None:
    busy_center(serve)
    serve.cli("users", "add", "sam", "--role", "supervisor",
              env={"ACDKIT_USER_PASSWORD": "lab-supervisor-pw"})
    pages.start()
    phone = phones()
    # The caller talks for about 20 s (SIPp plays the pcap while it holds the call).
    speech = speech_pcap(" ".join([SENTENCE] * 6), before="1" + "w" * 4)
    sipp = caller("100", media=speech, hangup_after=24, caller_id="4930400003",
                  timeout=60).start()
    try:
        serve.cli("agents", "resume", "1")
        phone.wait_for_invites(1, timeout=15)
        eventually(lambda: agents(serve)["1"]["state"] == "on_call", 10, what="on call")
        with customer_peer() as sup_phone, RtpSniffer("127.0.0.1", "127.0.0.4") as heard:
            sup_phone.start()
            sign_in(page, pages.url, "sam", "lab-supervisor-pw", role="supervisor",
                    phone=SUPERVISOR_PHONE)
            page.click("[data-agent='1'] [data-snoop=listen]")
            page.wait_for_selector("#note:has-text('to listen on agent 1')")
            [invite] = sup_phone.wait_for_invites(1, timeout=15)
            assert invite.user == f"1{SUPERVISOR_PHONE}"
            time.sleep(4)
            shot(page, "supervisor-listening")
        samples, _ = audio.decode(pcmu_heard(heard.packets), "ulaw")
        assert len(heard.packets) > 50, "no RTP reached the supervisor's phone"
        assert np.abs(samples).max() > 0.05, "the supervisor heard only silence"
    finally:
        sipp.wait(60)
