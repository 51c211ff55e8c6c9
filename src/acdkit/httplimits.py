"""Limits for an aiohttp listener (the audio endpoint in ``serve``, the web pages): a cap on
connections, a time limit on the first request's header, on idle keep-alive and on each
response, small request lines, headers and bodies (docs/security.md).

aiohttp has no connection cap of its own, so the listening socket is made here with a
protocol factory that counts aiohttp's open connections: at the cap, the oldest connection
with no request in progress is closed to make room; when every one is busy, the new one is
closed at once. A connection that has not finished its first request within
``header_timeout`` is closed whatever aiohttp's version does with ``keepalive_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from acdkit.limits import RateLimitedLog

log = logging.getLogger(__name__)
say = RateLimitedLog(log)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 64
    header_timeout: float = 5.0  # seconds for a new connection's first request header
    idle_timeout: float = 15.0  # seconds a keep-alive connection may wait for its next request
    response_timeout: float = 30.0  # seconds a handler may take (TTS included)
    max_request_bytes: int = 8_192  # request line, each header field, and the body
    streams: tuple[str, ...] = ()  # paths ending so serve live streams: no response limit


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()  # closes the socket now: a refused peer holds no descriptor


class LimitedListener:
    """``runner``'s aiohttp server behind a connection cap; ``middleware`` marks busy
    connections and bounds each response."""

    def __init__(self, runner: web.AppRunner, limits: HttpLimits, name: str) -> None:
        self.runner = runner
        self.limits = limits
        self.name = name
        self.refused = 0
        # aiohttp's handlers take no weak references (slots): both sets empty themselves.
        self._busy: set[RequestHandler] = set()  # a request in progress
        self._no_request: set[RequestHandler] = set()  # new, no request yet

    @staticmethod
    def runner_args(limits: HttpLimits) -> dict[str, object]:
        """What ``web.AppRunner`` takes for these limits."""
        return {"access_log": None, "keepalive_timeout": limits.idle_timeout,
                "max_line_size": limits.max_request_bytes,
                "max_field_size": limits.max_request_bytes, "max_headers": 32,
                "handler_cancellation": True}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        self._busy.add(protocol)
        self._no_request.discard(protocol)
        limit = None if request.path.endswith(self.limits.streams or ("\0",)) \
            else self.limits.response_timeout
        try:
            async with asyncio.timeout(limit):
                return await handler(request)
        except TimeoutError:
            say.warning(f"{self.name} slow", "%s: no response within %g s", self.name,
                        self.limits.response_timeout)
            raise web.HTTPServiceUnavailable() from None
        finally:
            self._busy.discard(protocol)

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self.runner.server
        assert server is not None, "runner.setup() first"
        # Closed ones leave server.connections a loop turn later: count only the open.
        open_now = [h for h in server.connections if h.transport is not None]
        if len(open_now) >= self.limits.max_connections:
            idle = [h for h in open_now if h not in self._busy]
            if not idle:
                self.refused += 1
                say.warning(f"{self.name} refused", "%s: %d connections open; refused a new "
                            "one", self.name, len(open_now))
                return _Refused()
            idle[0].force_close()  # the oldest: server.connections keeps arrival order
            say.info(f"{self.name} evicted", "%s: %d connections open; closed the oldest idle "
                     "one", self.name, len(open_now))
        handler = server()
        self._no_request.add(handler)
        asyncio.get_running_loop().call_later(self.limits.header_timeout, self._header_due,
                                              handler)
        return handler

    def _header_due(self, handler: RequestHandler) -> None:
        if handler in self._no_request:
            self._no_request.discard(handler)
            if handler.transport is None:
                return  # gone already
            say.info(f"{self.name} slow header", "%s: no request within %g s; closed",
                     self.name, self.limits.header_timeout)
            handler.force_close()

    async def start(self, host: str, port: int,
                    ssl: ssl_module.SSLContext | None = None) -> asyncio.Server:
        """Listen on ``host:port`` (after ``runner.setup()``), over TLS with ``ssl``; return
        the asyncio server."""
        return await asyncio.get_running_loop().create_server(self._protocol, host, port,
                                                              backlog=128, ssl=ssl)
