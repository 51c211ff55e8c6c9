"""The ARI connection: one events WebSocket that also carries the REST requests.

Wire format (docs/architecture.md §2; checked on Asterisk 22.10.1). Asterisk 20.14 / 21.9 / 22.4 and
later take ``{"type": "RESTRequest", "request_id", "method", "uri", "query_strings":
[{"name", "value"}], "content_type": "application/json", "message_body"}`` on the events
socket and answer ``{"type": "RESTResponse", "request_id", "status_code", "reason_phrase",
"uri", "content_type", "message_body"}``; ``message_body`` is the JSON an HTTP request would
return, as a *string* (the docs' sample ``headers`` list is not sent). Responses find their
caller by ``request_id`` (a dict of futures, each with its own timeout). Every connect probes
``GET asterisk/info`` on the socket: an error status or no answer (older Asterisk ignores
text frames) switches requests to HTTP. Binary content (stored recordings) always goes over
HTTP: the socket answers 406 for it. Every request sent counts in ``requests``, by method
and route (ari/request_routes.py), and every event received in ``events``, by type, for
``/metrics``. Given the event types it wants, the client sets the app's event filter on every
connection (Asterisk forgets it with the registration), answers to requests always included:
they pass the filter as events do (docs/architecture.md §7).

Tasks. ``run()`` owns a *reader* task that only decodes frames, resolves response futures
and queues events; a *dispatcher* task that awaits ``on_event`` for one event at a time, in
arrival order (so a channel's events reach the app in order); and the reconnect loop. The
reader never awaits a handler, so a handler may await a REST request over the same socket
without deadlock; it does hold back later events while it waits, so ``on_event`` should hand
long flows to their own tasks (``ari/session.py``: one queue per channel).

Drops (invariant 6, docs/architecture.md §4). When the socket closes, requests in flight fail with
``AriRequestFailed`` ("connection lost"), a synthetic ``Disconnected`` is dispatched, and we
reconnect with exponential backoff (0.5 s doubling to 10 s, equal jitter). Connecting
registers the app again; ``Connected`` (dispatched before any event of the new connection)
tells the app to reconcile. After ``ApplicationReplaced`` (another process took the app
name; Asterisk 22 keeps our socket open but sends it nothing more) we step down: disconnect
and return from ``run()`` instead of taking the app back.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from acdkit.ari import events as ev
from acdkit.ari.request_routes import RequestCounts, count
from acdkit.core.errors import AriRequestFailed, AsteriskUnavailable, ConfigError, InvalidInput
from acdkit.limits import RateLimitedLog

log = logging.getLogger(__name__)

Param = str | int | float | bool | Sequence[str] | None
Params = Mapping[str, Param]
TRANSPORTS = ("auto", "websocket", "http")
SLOW_ANSWER = 0.5  # seconds: an ARI answer this late is logged (a call step waited for it)
EventHandler = Callable[[ev.Event], Awaitable[None]]
# Asked for whatever the app wants: answers to requests on the socket pass Asterisk's event
# filter as if they were events (Asterisk 22.10.1: without it, no request is answered), and
# the takeover notice ends this client.
WANTED_ALWAYS = frozenset({"RESTResponse", "ApplicationReplaced"})


@dataclass(frozen=True, slots=True)
class AriResponse:
    """A REST answer: the HTTP status and the decoded JSON body (None when empty)."""

    status: int
    body: Any


def encode_params(params: Params | None) -> dict[str, str]:
    """Query parameters as ARI reads them: booleans ``true``/``false``, lists comma-joined."""
    out: dict[str, str] = {}
    for name, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[name] = str(value)
        else:
            out[name] = ",".join(value)
    return out


def _decode_body(text: str | None) -> Any:
    try:
        return orjson.loads(text) if text else None
    except ValueError:  # orjson.JSONDecodeError is one
        return text


class AriClient:
    """One ARI application connection: events in, REST requests out."""

    def __init__(self, url: str, username: str, password: str, app: str, *,
                 request_timeout: float = 5.0, transport: str = "auto",
                 backoff_initial: float = 0.5, backoff_max: float = 10.0,
                 heartbeat: float = 15.0, events: Collection[str] | None = None) -> None:
        """``url`` is Asterisk's HTTP server (``http://127.0.0.1:8088``, ``/ari`` optional);
        ``transport``: ``auto`` (probe), ``websocket`` (no fallback) or ``http`` (forced);
        ``events``: the event types to ask Asterisk for (None: every one)."""
        base = URL(url).with_user(None).with_password(None)
        if base.scheme not in ("http", "https"):
            raise ConfigError("ari.url", f"must be http(s)://host:port, not {base.scheme!r}")
        if transport not in TRANSPORTS:
            raise ConfigError("ari.transport", f"must be one of {TRANSPORTS}, not {transport!r}")
        path = base.path.rstrip("/")
        self._http = base.with_path((path if path.endswith("/ari") else path + "/ari") + "/")
        self._ws_url = self._http.with_scheme("ws" if base.scheme == "http" else "wss")
        self._ws_url = (self._ws_url / "events").with_query(app=app, subscribeAll="false")
        self._auth = aiohttp.encode_basic_auth(username, password)
        self.username = username
        self.app = app
        self.request_timeout = request_timeout
        self._slow = RateLimitedLog(log, burst=5, per=60.0)
        self._forced = transport
        self._backoff = (backoff_initial, backoff_max)
        self._heartbeat = heartbeat
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._transport: str | None = "http" if transport == "http" else None
        self._pending: dict[str, tuple[asyncio.Future[AriResponse], str, str]] = {}
        # The requests' deadlines, (loop time, request id), soonest first, and the one timer
        # armed for the soonest: a request costs a heap push, not a timer of its own.
        self._deadlines: list[tuple[float, str]] = []
        self._expiry: asyncio.TimerHandle | None = None
        self._ids = itertools.count(1)
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._held: list[ev.Event] | None = None
        self._connecting: asyncio.Task[aiohttp.ClientWebSocketResponse | None] | None = None
        self._events: asyncio.Queue[ev.Event] = asyncio.Queue()
        self.replaced = False
        self.requests: RequestCounts = RequestCounts()  # sent, by (method, route): /metrics
        self.events: Counter[str] = Counter()  # received, by type: /metrics
        self._wanted = None if events is None else frozenset(events) | WANTED_ALWAYS

    def __repr__(self) -> str:
        return (f"AriClient(url={str(self._http)!r}, username={self.username!r}, "
                f"app={self.app!r}, transport={self._transport!r})")

    @property
    def transport(self) -> str | None:
        """``"websocket"`` or ``"http"`` once chosen; None before the first probe."""
        return self._transport

    @property
    def connected(self) -> bool:
        """True while the events WebSocket is up and probed."""
        return self._ready.is_set()

    # ------------------------------------------------------------ requests

    async def request(self, method: str, path: str, *, params: Params | None = None,
                      body: Any = None, ok_statuses: Collection[int] = ()) -> AriResponse:
        """Send one REST request (``path`` relative to ``/ari``) and return its answer.

        A 2xx status, or one listed in ``ok_statuses`` (e.g. 404 for "the channel is gone"),
        is returned; any other status, a timeout or a dropped connection raises
        ``AriRequestFailed``. Over the WebSocket, a request made while reconnecting waits up
        to ``request_timeout`` for the connection.
        """
        path = path.lstrip("/")
        if self._stop.is_set():
            raise AriRequestFailed(method, path, None, "the ARI client is closed")
        if self._transport != "http" and not self._ready.is_set():
            try:  # reconnecting: give it up to one request timeout
                await asyncio.wait_for(self._ready.wait(), self.request_timeout)
            except TimeoutError:
                raise AriRequestFailed(method, path, None, "not connected to Asterisk") from None
        started = time.monotonic()
        if self._transport == "http":
            response = await self._http_request(method, path, encode_params(params), body)
        else:
            response = await self._ws_request(method, path, encode_params(params), body)
        took = time.monotonic() - started
        if took >= SLOW_ANSWER:
            self._slow.warning("slow ARI answer", "ARI %s %s answered in %.0f ms", method,
                               path, 1000 * took)
        if 200 <= response.status < 300 or response.status in ok_statuses:
            return response
        answer = response.body if isinstance(response.body, dict) else {}
        detail = answer.get("message") or answer.get("error") or "unexpected status"  # 500s
        raise AriRequestFailed(method, path, response.status, str(detail))

    async def download(self, path: str) -> bytes:
        """GET binary content (a stored recording) over HTTP; non-2xx raises
        ``AriRequestFailed`` with the status (a 404 has ``status == 404``)."""
        path = path.lstrip("/")
        if self._stop.is_set():
            raise AriRequestFailed("GET", path, None, "the ARI client is closed")
        count(self.requests, "GET", path)
        try:
            async with self._http_session().get(self._http / path) as r:
                data = await r.read()
                if not 200 <= r.status < 300:
                    raise AriRequestFailed("GET", path, r.status, r.reason or "download failed")
                return data
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriRequestFailed("GET", path, None, f"HTTP error: {_why(exc)}") from exc

    def _http_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"Authorization": self._auth},
                timeout=aiohttp.ClientTimeout(total=self.request_timeout))
        return self._session

    async def _http_request(self, method: str, path: str, query: dict[str, str],
                            body: Any) -> AriResponse:
        count(self.requests, method, path)
        try:
            async with self._http_session().request(
                    method, self._http / path, params=query, json=body) as r:
                return AriResponse(r.status, _decode_body(await r.text()))
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AriRequestFailed(method, path, None, f"HTTP error: {_why(exc)}") from exc

    async def _ws_request(self, method: str, path: str, query: dict[str, str],
                          body: Any) -> AriResponse:
        ws = self._ws
        if ws is None or ws.closed:
            raise AriRequestFailed(method, path, None, "connection lost before sending")
        count(self.requests, method, path)
        request_id = f"acdkit-{next(self._ids)}"
        message: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id,
                                   "method": method, "uri": path}
        if query:
            message["query_strings"] = [{"name": k, "value": v} for k, v in query.items()]
        if body is not None:
            message["content_type"] = "application/json"
            message["message_body"] = orjson.dumps(body).decode()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AriResponse] = loop.create_future()
        self._pending[request_id] = (future, method, path)
        self._expire_at(loop, loop.time() + self.request_timeout, request_id)
        try:
            # No send lock: aiohttp writes each (uncompressed) frame in one transport.write.
            await ws.send_frame(orjson.dumps(message), aiohttp.WSMsgType.TEXT)
            return await future
        except TimeoutError:
            raise AriRequestFailed(method, path, None,
                                   f"no response within {self.request_timeout:g} s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise AriRequestFailed(method, path, None, f"connection lost: {_why(exc)}") from exc
        finally:
            self._pending.pop(request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # retrieved, also when a cancellation cut in after expiry

    def _expire_at(self, loop: asyncio.AbstractEventLoop, deadline: float,
                   request_id: str) -> None:
        """Fail request ``request_id`` with TimeoutError at ``deadline`` unless answered."""
        heapq.heappush(self._deadlines, (deadline, request_id))
        if self._expiry is None or deadline < self._expiry.when():
            if self._expiry is not None:
                self._expiry.cancel()
            self._expiry = loop.call_at(deadline, self._expire, loop)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The timer: fail what is due, forget what was answered, arm for the next one."""
        self._expiry = None
        now = loop.time()
        while self._deadlines:
            deadline, request_id = self._deadlines[0]
            entry = self._pending.get(request_id)
            if entry is not None and deadline > now:
                self._expiry = loop.call_at(deadline, self._expire, loop)
                return
            heapq.heappop(self._deadlines)
            if entry is not None and not entry[0].done():
                entry[0].set_exception(TimeoutError())

    def _fail_pending(self, reason: str) -> None:
        for future, method, path in self._pending.values():
            if not future.done():
                future.set_exception(AriRequestFailed(method, path, None, reason))
        self._pending.clear()

    # ------------------------------------------------------------ connection loop

    async def run(self, on_event: EventHandler) -> None:
        """Connect, deliver events to ``on_event`` in order, reconnect on drops.

        Returns after ``close()`` or after the app was taken over (``ApplicationReplaced``);
        a client runs once.
        """
        dispatcher = asyncio.create_task(self._dispatch(on_event), name="ari-dispatch")
        attempt = 0
        try:
            while not self._stop.is_set():
                if attempt:
                    await self._sleep_backoff(attempt)
                    if self._stop.is_set():
                        break
                self._connecting = asyncio.create_task(self._connect())
                try:
                    ws = await self._connecting
                except asyncio.CancelledError:
                    if not self._stop.is_set():
                        raise
                    break  # close() cancelled the attempt
                if ws is None or self._stop.is_set():
                    attempt += 1
                    if ws is not None:
                        await ws.close()
                    continue
                attempt = 1  # after a drop, a first short backoff before reconnecting
                await self._serve(ws)
                if self.replaced:
                    break
            # Let the app see the last Disconnected, but never hang on a stuck handler.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._events.join(), self.request_timeout)
        finally:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher

    async def _sleep_backoff(self, attempt: int) -> None:
        first, cap = self._backoff
        ceiling = min(cap, first * 2 ** (attempt - 1))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter"
        log.info("ARI reconnect to %s in %.2f s", self._where(), delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    def _where(self) -> str:
        return str(self._ws_url.with_query(app=self.app))

    async def _connect(self) -> aiohttp.ClientWebSocketResponse | None:
        try:
            ws = await asyncio.wait_for(self._http_session().ws_connect(
                self._ws_url, heartbeat=self._heartbeat, max_msg_size=64 * 1024 * 1024,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=self.request_timeout),
            ), 2 * self.request_timeout)
        except aiohttp.WSServerHandshakeError as exc:
            hint = " (check the ARI user and password)" if exc.status == 401 else ""
            log.warning("ARI connect to %s refused: HTTP %s%s", self._where(), exc.status, hint)
            return None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("ARI connect to %s failed: %s", self._where(), _why(exc))
            return None
        log.info("ARI connected to %s as user %s", self._where(), self.username)
        return ws

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws, self._held = ws, []
        reader = asyncio.create_task(self._read(ws), name="ari-reader")
        reason = "client stopped"
        try:
            version = await self._probe(ws)
            if version is not None:
                await self._filter_events()
                log.info("ARI app %s registered; requests over %s (Asterisk %s)",
                         self.app, self._transport, version or "unknown version")
                self._emit_connected(version)
            await reader
            reason = "application replaced" if self.replaced else f"closed ({ws.close_code})"
        finally:
            reader.cancel()
            self._ready.clear()
            self._ws = None
            await ws.close()
            self._fail_pending(f"connection lost ({reason})")
            for event in self._held or []:  # the probe never finished: still deliver them
                self._events.put_nowait(event)
            self._held = None
            self._events.put_nowait(ev.Disconnected(reason=reason))
            log.info("ARI disconnected from %s: %s", self._where(), reason)

    def _emit_connected(self, version: str) -> None:
        held, self._held = self._held or [], None
        self._events.put_nowait(ev.Connected(transport=self._transport or "http",
                                             asterisk_version=version))
        for event in held:
            self._events.put_nowait(event)
        self._ready.set()

    async def _probe(self, ws: aiohttp.ClientWebSocketResponse) -> str | None:
        """Choose the request transport for this connection and return Asterisk's version;
        None when the socket dropped meanwhile."""
        if self._forced != "http":
            try:
                info = await self._ws_request("GET", "asterisk/info", {}, None)
            except AriRequestFailed as exc:
                info = AriResponse(0, exc.detail)
            if ws.closed:
                return None
            if info.status == 200 or self._forced == "websocket":
                self._transport = "websocket"
                return _version(info.body)
            # Before 20.14/21.9/22.4 Asterisk ignores text frames on this socket (timeout);
            # 22.x answers 400 to what it cannot parse.
            log.warning("ARI REST over WebSocket unavailable (%s); using HTTP for requests",
                        info.status or info.body)
        self._transport = "http"
        try:
            return _version((await self._http_request("GET", "asterisk/info", {}, None)).body)
        except AriRequestFailed:
            return ""

    async def _filter_events(self) -> None:
        """Ask Asterisk for the wanted event types only. The filter lives as long as the
        app's registration, so every connection sets it again; a refusal (an Asterisk
        without event filters) leaves every event coming, which the app copes with."""
        if self._wanted is None:
            return
        path = f"applications/{self.app}/eventFilter"
        body = {"allowed": [{"type": kind} for kind in sorted(self._wanted)]}
        send = self._http_request if self._transport == "http" else self._ws_request
        try:
            answer = await send("PUT", path, {}, body)
        except AriRequestFailed as exc:
            answer = AriResponse(0, exc.detail)
        if not 200 <= answer.status < 300:
            log.warning("ARI event filter not set (%s): Asterisk sends every event",
                        answer.status or answer.body)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type == aiohttp.WSMsgType.TEXT:
                self._on_text(frame.data)
            elif frame.type == aiohttp.WSMsgType.ERROR:
                log.info("ARI WebSocket error: %r", ws.exception())
                break
            if self.replaced:
                break
        # Fail requests in flight now rather than at their timeouts.
        self._fail_pending(f"connection lost (closed {ws.close_code})")

    def _on_text(self, text: str) -> None:
        try:
            data = orjson.loads(text)
        except ValueError:
            log.warning("ARI sent a frame that is not JSON (%d bytes)", len(text))
            return
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "RESTResponse":
            self._on_response(data)
            return
        self.events[kind if isinstance(kind, str) and kind in ev.ASTERISK_EVENTS else "other"] += 1
        try:
            event = ev.parse_event(data)
        except InvalidInput as exc:
            log.warning("ARI event dropped: %s", exc)
            return
        if isinstance(event, ev.ApplicationReplaced):
            self.replaced = True
            log.warning("ARI app %s was taken over by another connection", self.app)
        if self._held is not None:
            self._held.append(event)
        else:
            self._events.put_nowait(event)

    def _on_response(self, data: dict[str, Any]) -> None:
        entry = self._pending.get(str(data.get("request_id")))
        if entry is None or entry[0].done():
            log.debug("ARI response for an unknown or expired request: %s", data.get("uri"))
            return
        status = data.get("status_code")
        if isinstance(status, bool) or not isinstance(status, int):
            status = 0
        body = data.get("message_body")
        entry[0].set_result(AriResponse(status, _decode_body(body if isinstance(body, str)
                                                             else None)))

    async def _dispatch(self, on_event: EventHandler) -> None:
        while True:
            event = await self._events.get()
            try:
                await on_event(event)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                log.warning("ARI event handler cancelled itself on %s", type(event).__name__)
            except Exception:
                log.exception("ARI event handler failed on %s", type(event).__name__)
            finally:
                self._events.task_done()

    # ------------------------------------------------------------ lifecycle

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the WebSocket is up and probed; raises ``AsteriskUnavailable``."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise AsteriskUnavailable(f"ARI not connected within {timeout:g} s") from None

    async def close(self) -> None:
        """Stop reconnecting, close the WebSocket (``run()`` returns) and the HTTP session."""
        self._stop.set()
        if self._connecting is not None:
            self._connecting.cancel()
        if self._ws is not None:
            await self._ws.close()
        self._fail_pending("connection lost (client closed)")
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._deadlines.clear()
        if self._session is not None:
            await self._session.close()


def _why(exc: BaseException) -> str:
    # str(), never repr(): aiohttp's ClientResponseError repr carries the request headers,
    # Authorization included.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _version(info: Any) -> str:
    system = info.get("system") if isinstance(info, dict) else None
    version = system.get("version") if isinstance(system, dict) else None
    return version if isinstance(version, str) else ""
