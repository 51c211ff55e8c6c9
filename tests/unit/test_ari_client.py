"""AriClient and AriControl against a tiny fake Asterisk (aiohttp.web on a loopback port).

The fake speaks the wire format seen on Asterisk 22.10.1: RESTRequest in, RESTResponse out
(``message_body`` a JSON string), events pushed on the same socket, and plain HTTP under
``/ari``. It can delay answers per URI (so they come back out of order), never answer, drop
the socket, refuse connections, or answer REST-over-WebSocket with 400 like an Asterisk
that cannot parse the request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType, web

from acdkit.ari import events as ev
from acdkit.ari.client import AriClient
from acdkit.ari.control import AriControl
from acdkit.ari.request_routes import route_of
from acdkit.core.errors import AriRequestFailed, ConfigError, InvalidInput

USER, PASSWORD, APP = "acdkit", "s3cret-ari-pw", "acdkit-test"
FIXTURES = Path(__file__).resolve().parents[1] / "lab" / "fixtures" / "ari"
CHANNEL = {"id": "c1", "name": "PJSIP/caller-00000001", "state": "Up",
           "caller": {"name": "", "number": "+4930123"}}


class FakeAsterisk:
    """Answers RESTRequests (echoing what it understood) and pushes events."""

    def __init__(self) -> None:
        self.rest_over_ws = True  # False: answer 400 "Unknown request type." like a parse error
        self.refuse = False  # True: 503 on the events socket
        self.delays: dict[str, float] = {}  # uri -> seconds before answering; < 0: never
        self.statuses: dict[str, tuple[int, Any]] = {}  # uri -> (status, body)
        self.verbatim: dict[str, dict[str, Any]] = {}  # uri -> a captured RESTResponse frame
        self.sockets: list[web.WebSocketResponse] = []
        self.connects = 0
        self.ws_requests: list[dict[str, Any]] = []
        self.http_requests: list[str] = []
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def authorized(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return request.headers.get("Authorization") == expected

    async def events(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return web.json_response({"message": "Authentication required"}, status=401)
        if self.refuse or request.query.get("app") != APP:
            return web.json_response({"message": "busy"}, status=503)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connects += 1
        self.sockets.append(ws)
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                task = asyncio.create_task(self._answer(ws, json.loads(frame.data)))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self.sockets.remove(ws)
        return ws

    def result(self, uri: str, query: dict[str, str], body: Any, via: str) -> tuple[int, Any]:
        if uri in self.statuses:
            return self.statuses[uri]
        return 200, {"uri": uri, "query": query, "body": body, "via": via,
                     "system": {"version": "22.10.1"}}

    async def _answer(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        self.ws_requests.append(msg)
        uri = msg.get("uri", "")
        delay = self.delays.get(uri, 0.0)
        if delay < 0:
            return
        await asyncio.sleep(delay)
        if uri in self.verbatim:
            await ws.send_str(json.dumps({**self.verbatim[uri],
                                          "request_id": msg.get("request_id", "")}))
            return
        if not self.rest_over_ws:
            status, payload = 400, {"message": "Unknown request type."}
        else:
            query = {q["name"]: q["value"] for q in msg.get("query_strings", [])}
            body = json.loads(msg["message_body"]) if msg.get("message_body") else None
            status, payload = self.result(uri, query, body, "websocket")
        response = {"type": "RESTResponse", "transaction_id": "",
                    "request_id": msg.get("request_id", ""), "status_code": status,
                    "reason_phrase": "x", "uri": uri}
        if payload is not None:
            response |= {"content_type": "application/json", "message_body": json.dumps(payload)}
        if not ws.closed:
            await ws.send_str(json.dumps(response))

    async def http(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return web.json_response({"message": "Authentication required"}, status=401)
        uri = request.match_info["tail"]
        self.http_requests.append(uri)
        if uri.endswith("/file"):
            return web.Response(body=b"RIFF-audio", content_type="audio/wav")
        body = await request.json() if request.can_read_body else None
        status, payload = self.result(uri, dict(request.query), body, "http")
        if payload is None:
            return web.Response(status=status)
        return web.json_response(payload, status=status)

    async def push(self, event: dict[str, Any]) -> None:
        for ws in list(self.sockets):
            await ws.send_str(json.dumps({"application": APP, **event}))

    async def drop(self) -> None:
        for ws in list(self.sockets):
            await ws.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeAsterisk]:
    server = FakeAsterisk()
    app = web.Application()
    app.router.add_get("/ari/events", server.events)
    app.router.add_route("*", "/ari/{tail:.+}", server.http)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = runner.addresses[0][1]
    yield server
    await server.drop()
    await runner.cleanup()


class Harness:
    """A client running against the fake, recording every event it dispatches."""

    def __init__(self, fake: FakeAsterisk, **kwargs: Any) -> None:
        options: dict[str, Any] = {"request_timeout": 1.0, "backoff_initial": 0.02,
                                   "backoff_max": 0.1} | kwargs
        password = options.pop("password", PASSWORD)
        self.client = AriClient(f"http://127.0.0.1:{fake.port}", USER, password, APP, **options)
        self.events: list[ev.Event] = []
        self.task: asyncio.Task[None] | None = None

    async def on_event(self, event: ev.Event) -> None:
        self.events.append(event)

    async def start(self, wait: bool = True) -> Harness:
        self.task = asyncio.create_task(self.client.run(self.on_event))
        if wait:
            await self.client.wait_connected(3.0)
        return self

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    async def until(self, predicate: Any, timeout: float = 3.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        await self.client.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, 3.0)


@pytest.fixture
async def harness(fake: FakeAsterisk) -> AsyncIterator[Harness]:
    h = await Harness(fake).start()
    yield h
    await h.stop()


async def test_requests_go_over_the_websocket_with_query_and_body(
        harness: Harness, fake: FakeAsterisk) -> None:
    assert harness.client.transport == "websocket"
    assert harness.kinds()[:1] == ["Connected"]
    connected = harness.events[0]
    assert isinstance(connected, ev.Connected) and connected.asterisk_version == "22.10.1"
    response = await harness.client.request(
        "POST", "channels/c1/play/p1", params={"media": ["sound:a", "sound:b"], "beep": True,
                                               "skip": None, "timeout": 5},
        body={"variables": {"X": "1"}})
    assert response.status == 200
    assert response.body["via"] == "websocket"
    assert response.body["query"] == {"media": "sound:a,sound:b", "beep": "true", "timeout": "5"}
    assert response.body["body"] == {"variables": {"X": "1"}}
    sent = fake.ws_requests[-1]
    assert sent["type"] == "RESTRequest" and sent["method"] == "POST"
    assert sent["content_type"] == "application/json"
    assert fake.http_requests == ["asterisk/info"] or fake.http_requests == []


async def test_out_of_order_responses_reach_their_callers(
        harness: Harness, fake: FakeAsterisk) -> None:
    fake.delays = {"slow": 0.3, "medium": 0.15, "fast": 0.0}
    results = await asyncio.gather(*(harness.client.request("GET", uri)
                                     for uri in ("slow", "medium", "fast") * 5))
    assert [r.body["uri"] for r in results] == ["slow", "medium", "fast"] * 5


async def test_a_request_without_answer_times_out(fake: FakeAsterisk) -> None:
    h = await Harness(fake, request_timeout=0.2).start()
    fake.delays = {"never": -1}
    with pytest.raises(AriRequestFailed, match=r"no response within 0\.2 s"):
        await h.client.request("GET", "never")
    assert h.client._pending == {}  # nothing leaks
    assert (await h.client.request("GET", "still-works")).status == 200
    await h.stop()


async def test_each_request_times_out_at_its_own_deadline(fake: FakeAsterisk) -> None:
    # One timer serves every request's deadline: a shorter timeout asked later still fires
    # first, and answered requests leave nothing behind once their deadlines pass.
    h = await Harness(fake, request_timeout=5.0).start()
    fake.delays = {"never": -1}
    patient = asyncio.create_task(h.client.request("GET", "never"))
    await asyncio.sleep(0.05)
    h.client.request_timeout = 0.2
    started = time.monotonic()
    with pytest.raises(AriRequestFailed, match=r"no response within 0\.2 s"):
        await h.client.request("GET", "never")
    assert time.monotonic() - started < 1.0
    assert not patient.done()
    patient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await patient
    h.client.request_timeout = 0.1
    for _ in range(20):
        assert (await h.client.request("GET", "answered")).status == 200
    await asyncio.sleep(0.3)
    assert h.client._deadlines == [] and h.client._expiry is None
    assert h.client._pending == {}
    await h.stop()


async def test_non_2xx_raises_unless_accepted(harness: Harness, fake: FakeAsterisk) -> None:
    fake.statuses = {"channels/gone": (404, {"message": "Channel not found"}),
                     "channels": (500, {"error": "Allocation failed"})}
    with pytest.raises(AriRequestFailed) as info:
        await harness.client.request("GET", "channels/gone")
    assert info.value.status == 404 and "Channel not found" in str(info.value)
    gone = await harness.client.request("GET", "channels/gone", ok_statuses={404})
    assert gone.status == 404
    with pytest.raises(AriRequestFailed, match="Allocation failed"):
        await harness.client.request("POST", "channels")


async def test_captured_asterisk_responses_decode(harness: Harness, fake: FakeAsterisk) -> None:
    files = sorted(FIXTURES.glob("RESTResponse*.json")) if FIXTURES.is_dir() else []
    assert files, f"no captured RESTResponse frames in {FIXTURES}"
    for path in files:
        frame = json.loads(path.read_text())
        fake.verbatim = {path.stem: frame}
        status = frame["status_code"]
        response = await harness.client.request("GET", path.stem,
                                                ok_statuses={status})
        assert response.status == status, path.name
        if "message_body" in frame:
            assert response.body == json.loads(frame["message_body"]), path.name
        else:  # 204: Asterisk sends neither content_type nor message_body
            assert response.body is None, path.name


async def test_a_drop_fails_requests_in_flight_and_reconnects(
        harness: Harness, fake: FakeAsterisk) -> None:
    fake.delays = {"hang": -1}
    pending = asyncio.create_task(harness.client.request("GET", "hang"))
    await harness.until(lambda: any(r.get("uri") == "hang" for r in fake.ws_requests))
    started = asyncio.get_running_loop().time()
    await fake.drop()
    with pytest.raises(AriRequestFailed, match="connection lost"):
        await pending
    assert asyncio.get_running_loop().time() - started < 0.5  # not at the 1 s timeout
    await harness.until(lambda: harness.kinds().count("Connected") == 2)
    assert harness.kinds()[:3] == ["Connected", "Disconnected", "Connected"]
    assert fake.connects == 2
    assert (await harness.client.request("GET", "after")).body["via"] == "websocket"


async def test_backoff_grows_to_its_cap_with_jitter(
        fake: FakeAsterisk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="acdkit.ari.client")
    fake.refuse = True
    h = await Harness(fake, backoff_initial=0.01, backoff_max=0.08).start(wait=False)
    await h.until(lambda: caplog.text.count("reconnect") >= 7)
    fake.refuse = False
    await h.client.wait_connected(2.0)
    delays = [float(d) for d in re.findall(r"reconnect to \S+ in ([0-9.]+) s", caplog.text)]
    ceilings = [min(0.08, 0.01 * 2 ** i) for i in range(len(delays))]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 - 0.006 <= delay <= ceiling + 0.006  # log rounds to 0.01
    assert "ARI connected to" in caplog.text
    await h.stop()


async def test_events_are_dispatched_in_order_while_a_handler_awaits_a_request(
        fake: FakeAsterisk) -> None:
    seen: list[str] = []
    fake.delays = {"channels/c1/answer": 0.1}

    class Answering(Harness):
        async def on_event(self, event: ev.Event) -> None:
            seen.append(type(event).__name__)
            if isinstance(event, ev.StasisStart):  # awaits a response on the same socket
                await self.client.request("POST", f"channels/{event.channel.id}/answer")
                seen.append("answered")

    h = await Answering(fake).start()
    await fake.push({"type": "StasisStart", "args": ["inbound", "main"], "channel": CHANNEL})
    await fake.push({"type": "ChannelDtmfReceived", "digit": "1", "channel": CHANNEL})
    await fake.push({"type": "StasisEnd", "channel": CHANNEL})
    await h.until(lambda: "StasisEnd" in seen)
    assert seen == ["Connected", "StasisStart", "answered", "ChannelDtmfReceived", "StasisEnd"]
    await h.stop()


async def test_malformed_frames_are_dropped_not_fatal(
        harness: Harness, fake: FakeAsterisk) -> None:
    for ws in fake.sockets:
        await ws.send_str("not json")
        await ws.send_str(json.dumps({"type": "StasisStart"}))  # no channel
    await fake.push({"type": "StasisEnd", "channel": CHANNEL})
    await harness.until(lambda: "StasisEnd" in harness.kinds())
    assert harness.kinds() == ["Connected", "StasisEnd"]


async def test_every_connection_asks_for_the_wanted_events_only(fake: FakeAsterisk) -> None:
    """Asterisk forgets an app's event filter with its registration: each connection sets it
    again, answers to requests always included (they pass the filter as events do)."""
    h = await Harness(fake, events={"StasisStart", "StasisEnd"}).start()
    try:
        await fake.drop()
        await h.until(lambda: h.kinds().count("Connected") == 2)
        filters = [r for r in fake.ws_requests
                   if (r["method"], r["uri"]) == ("PUT", f"applications/{APP}/eventFilter")]
        assert len(filters) == 2
        allowed = [e["type"] for e in json.loads(filters[0]["message_body"])["allowed"]]
        assert allowed == ["ApplicationReplaced", "RESTResponse", "StasisEnd", "StasisStart"]
    finally:
        await h.stop()


async def test_a_refused_event_filter_leaves_every_event_coming(
        fake: FakeAsterisk, caplog: pytest.LogCaptureFixture) -> None:
    fake.statuses[f"applications/{APP}/eventFilter"] = (404, {"message": "Not found"})
    h = await Harness(fake, events={"StasisEnd"}).start()
    try:
        assert "ARI event filter not set (404)" in caplog.text
        await fake.push({"type": "StasisEnd", "channel": CHANNEL})
        await h.until(lambda: "StasisEnd" in h.kinds())
    finally:
        await h.stop()


async def test_events_received_are_counted_by_type(
        harness: Harness, fake: FakeAsterisk) -> None:
    await fake.push({"type": "StasisEnd", "channel": CHANNEL})
    await fake.push({"type": "ChannelVarset", "variable": "X", "value": "1"})
    await fake.push({"type": "NoSuchEvent-" + "x" * 300})  # never a label of its own
    await fake.push({"type": ["StasisEnd"]})  # not even text (found by the fuzz slice)
    await harness.until(lambda: sum(harness.client.events.values()) == 4)
    assert harness.client.events == {"StasisEnd": 1, "ChannelVarset": 1, "other": 2}
    # Without a wanted list, the client sets no filter.
    assert not [r for r in fake.ws_requests if r["uri"].endswith("eventFilter")]


async def test_falls_back_to_http_when_the_probe_gets_an_error(fake: FakeAsterisk) -> None:
    fake.rest_over_ws = False
    h = await Harness(fake).start()
    assert h.client.transport == "http"
    connected = h.events[0]
    assert isinstance(connected, ev.Connected) and connected.transport == "http"
    response = await h.client.request("POST", "bridges/b1", params={"type": "holding"})
    assert response.body == {**response.body, "via": "http", "query": {"type": "holding"}}
    assert len(fake.ws_requests) == 1  # only the probe went over the socket
    await h.stop()


async def test_falls_back_to_http_when_the_probe_is_ignored(fake: FakeAsterisk) -> None:
    fake.delays = {"asterisk/info": -1}  # an Asterisk before 20.14 ignores text frames
    h = await Harness(fake, request_timeout=0.2).start()
    assert h.client.transport == "http"
    assert (await h.client.request("GET", "x")).body["via"] == "http"
    await h.stop()


async def test_forced_http_transport(fake: FakeAsterisk) -> None:
    h = await Harness(fake, transport="http").start()
    assert (await h.client.request("GET", "x")).body["via"] == "http"
    assert fake.ws_requests == []
    await h.stop()


async def test_application_replaced_steps_down(harness: Harness, fake: FakeAsterisk) -> None:
    await fake.push({"type": "ApplicationReplaced"})
    assert harness.task is not None
    await asyncio.wait_for(harness.task, 2.0)  # run() returned by itself
    assert harness.kinds() == ["Connected", "ApplicationReplaced", "Disconnected"]
    assert harness.client.replaced and fake.connects == 1


async def test_the_password_never_reaches_logs_or_repr(
        fake: FakeAsterisk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = await Harness(fake, password="wrong-" + PASSWORD).start(wait=False)
    await wrong.until(lambda: "check the ARI user and password" in caplog.text)
    await wrong.stop()
    h = await Harness(fake).start()
    await fake.drop()
    await h.until(lambda: h.kinds().count("Connected") == 2)
    fake.statuses = {"boom": (500, {"error": "x"})}
    with pytest.raises(AriRequestFailed) as info:
        await h.client.request("GET", "boom")
    await h.stop()
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    texts = [caplog.text, repr(h.client), str(info.value), repr(info.value)]
    assert "ARI connected to" in caplog.text and "ARI disconnected" in caplog.text
    for text in texts:
        assert PASSWORD not in text and basic not in text


async def test_request_while_not_connected_fails_after_the_timeout(fake: FakeAsterisk) -> None:
    client = AriClient(f"http://127.0.0.1:{fake.port}", USER, PASSWORD, APP,
                       request_timeout=0.1)
    with pytest.raises(AriRequestFailed, match="not connected"):
        await client.request("GET", "asterisk/info")
    await client.close()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        AriClient("ftp://x", USER, PASSWORD, APP)
    with pytest.raises(ConfigError):
        AriClient("http://x", USER, PASSWORD, APP, transport="carrier-pigeon")
    client = AriClient(f"http://{USER}:{PASSWORD}@127.0.0.1:8088/ari", USER, PASSWORD, APP)
    assert PASSWORD not in repr(client) and "/ari/" in repr(client)


# --------------------------------------------------------------------------- AriControl


async def test_control_gone_is_a_value(harness: Harness, fake: FakeAsterisk) -> None:
    control = AriControl(harness.client)
    fake.statuses = {
        "channels/c9/answer": (404, {"message": "Channel not found"}),
        "channels/c9": (404, {"message": "Channel not found"}),
        "bridges/b1/addChannel": (400, {"message": "Channel not found"}),
        "playbacks/p9": (404, {"message": "Playback not found"}),
        "channels/c2/answer": (412, {"message": "Channel in invalid state"}),
        "channels/a-1": (500, {"error": "Allocation failed"}),
        "bridges/line-1": (409, {"message": "Bridge not in Stasis application"}),
    }
    assert await control.answer("c9") is False
    assert await control.get_channel("c9") is None
    assert await control.add_to_bridge("b1", ["c9"]) is False
    assert await control.stop_playback("p9") is False
    assert await control.destroy_bridge("line-1") is False  # torn down as its line left
    assert await control.originate("PJSIP/agent7", "a-1") is None
    with pytest.raises(AriRequestFailed):
        await control.answer("c2")  # a real failure is not "gone"


async def test_control_sends_what_ari_expects(harness: Harness, fake: FakeAsterisk) -> None:
    control = AriControl(harness.client)
    fake.statuses = {"channels/leg-1": (200, {**CHANNEL, "id": "leg-1"})}
    channel = await control.originate("PJSIP/agent7", "leg-1", app_args=["agent-leg", "a7"],
                                      caller_id='"Acme" <+4930123>', timeout=20,
                                      variables={"ACDKIT_TASK_ID": "t1"})
    assert channel is not None and channel.id == "leg-1"
    sent = fake.ws_requests[-1]
    query = {q["name"]: q["value"] for q in sent["query_strings"]}
    assert query == {"endpoint": "PJSIP/agent7", "app": APP, "appArgs": "agent-leg,a7",
                     "callerId": '"Acme" <+4930123>', "timeout": "20"}
    assert json.loads(sent["message_body"]) == {"variables": {"ACDKIT_TASK_ID": "t1"}}
    assert await control.play("c1", ["sound:hello", "digits:42"], playback_id="pb-1") == "pb-1"
    assert await control.add_to_bridge("hold-sales", ["c1"], role="participant")
    assert fake.ws_requests[-1]["uri"] == "bridges/hold-sales/addChannel"
    assert await control.continue_in_dialplan("c1;2", "acdkit-failure", "s", 1)
    assert await control.download_recording("vr-1") == b"RIFF-audio"
    assert fake.http_requests[-1] == "recordings/stored/vr-1/file"


@pytest.mark.parametrize("call", [
    lambda c: c.answer("../asterisk/info"),
    lambda c: c.answer("c1?x=1"),
    lambda c: c.hangup("c1", reason="whatever"),
    lambda c: c.play("c1", "sound:a,sound:b"),
    lambda c: c.play("c1", "http://evil/x"),
    lambda c: c.originate("PJSIP/123&PJSIP/456", "leg-1"),
    lambda c: c.originate("PJSIP/agent7", "leg-1", app_args=["a\nb"]),
    lambda c: c.originate("PJSIP/agent7", "leg/1"),
    lambda c: c.continue_in_dialplan("c1", "ctx,1", "s", 1),
    lambda c: c.set_var("c1", "X", "line\nbreak"),
    lambda c: c.create_bridge("b1", kind="conference"),
    lambda c: c.record("c1", "../etc/passwd"),
])
async def test_control_rejects_unsafe_values_before_sending(
        harness: Harness, fake: FakeAsterisk, call: Any) -> None:
    before = len(fake.ws_requests)
    with pytest.raises(InvalidInput):
        await call(AriControl(harness.client))
    assert len(fake.ws_requests) == before


async def test_a_slow_answer_is_logged_with_its_request(
        harness: Harness, fake: FakeAsterisk, caplog: pytest.LogCaptureFixture) -> None:
    """A call step that waited for Asterisk says so in the log (and a quick one does not)."""
    fake.delays = {"channels/c9/answer": 0.6}
    with caplog.at_level(logging.WARNING, logger="acdkit.ari.client"):
        await harness.client.request("GET", "quick")
        await harness.client.request("POST", "channels/c9/answer")
    slow = [r.getMessage() for r in caplog.records if "answered in" in r.getMessage()]
    assert len(slow) == 1 and slow[0].startswith("ARI POST channels/c9/answer answered in")
    assert int(slow[0].split()[-2]) >= 600


# --------------------------------------------------------------------------- request counts


async def test_requests_sent_are_counted_by_method_and_route(
        harness: Harness, fake: FakeAsterisk) -> None:
    control = AriControl(harness.client)
    assert harness.client.requests == {("GET", "asterisk/info"): 1}  # the connect's probe
    for channel in ("c1", "c2", "c3"):
        assert await control.answer(channel)
    assert await control.play("c1", ["sound:beep"], playback_id="pb-c1-7") == "pb-c1-7"
    assert await control.add_to_bridge("hold-sales", ["c2"])
    assert await control.download_recording("vr-1") == b"RIFF-audio"  # over HTTP
    fake.statuses = {"channels/c9": (404, {"message": "Channel not found"})}
    assert await control.get_channel("c9") is None  # an error answer was still sent
    assert harness.client.requests == {
        ("GET", "asterisk/info"): 1, ("POST", "channels/{id}/answer"): 3,
        ("POST", "channels/{id}/play/{id}"): 1, ("POST", "bridges/{id}/addChannel"): 1,
        ("GET", "recordings/stored/{id}/file"): 1, ("GET", "channels/{id}"): 1}
    with pytest.raises(InvalidInput):
        await control.answer("../asterisk/info")  # refused before sending: not counted
    assert sum(harness.client.requests.values()) == 8


async def test_requests_over_http_are_counted_too(fake: FakeAsterisk) -> None:
    h = await Harness(fake, transport="http").start()
    await h.client.request("DELETE", "channels/1712345678.42")
    await h.stop()
    assert h.client.requests == {("GET", "asterisk/info"): 1, ("DELETE", "channels/{id}"): 1}


@pytest.mark.parametrize(("path", "route"), [
    ("channels/1712345678.42/answer", "channels/{id}/answer"),
    ("/channels/c1/snoop/snoop-c1", "channels/{id}/snoop/{id}"),
    ("bridges", "bridges"),
    ("bridges/call-t1?x=1", "bridges/{id}"),
    ("applications/acdkit", "applications/{id}"),
    ("a/b/c/d/e/f/g/h", "{id}/{id}/{id}/{id}/{id}/{id}/..."),
])
def test_a_route_never_names_an_id(path: str, route: str) -> None:
    assert route_of(path) == route
