"""acdkit's own small asyncio FastAGI server (docs/architecture.md §7).

panoramisk 1.4's FastAGI server spins the event loop at 100% CPU when a client connects and
closes before the header's empty line (it loops on ``reader.read()`` returning ``b''``): one
port scan would stop acdkit. Here the header is read with a time limit and a size cap, EOF
ends the connection, and each script name maps to one route function.

Never strand a caller: a route that fails, an unknown route, or a whole header that is
refused (a bad route name, parameter or argument) leaves ``ACDKIT_STATUS`` set to ``failed``
(``dialplan_vars.STATUS``), so the dialplan goes on to its failure path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping

from acdkit import dialplan_vars
from acdkit.agi import protocol
from acdkit.agi.protocol import AgiProtocolError, AgiRequest
from acdkit.agi.session import REPLY_TIMEOUT, AgiChannel, ChannelHungUp

log = logging.getLogger(__name__)

Handler = Callable[[AgiChannel, AgiRequest], Awaitable[None]]
HEADER_TIMEOUT = 5.0  # seconds for the request header; Asterisk sends it at once


class AgiServer:
    """Serve ``routes`` (route name → handler) on ``host:port``."""

    def __init__(self, routes: Mapping[str, Handler], host: str = "127.0.0.1",
                 port: int = 4573, *, header_timeout: float = HEADER_TIMEOUT,
                 max_header: int = protocol.MAX_HEADER_BYTES) -> None:
        self.routes = dict(routes)
        self.host = host
        self.port = port
        self.header_timeout = header_timeout
        self.max_header = max_header
        self.server: asyncio.Server | None = None
        self.served = 0  # connections that reached a route
        self.dropped = 0  # connections closed before a whole header
        self._live: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen; return the port (useful with port 0)."""
        self.server = await asyncio.start_server(self._connection, self.host, self.port,
                                                 limit=self.max_header)
        port = int(self.server.sockets[0].getsockname()[1])
        log.info("FastAGI listening on %s:%d (routes: %s)", self.host, port,
                 ", ".join(sorted(self.routes)))
        return port

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in list(self._live):
            task.cancel()
        await asyncio.gather(*self._live, return_exceptions=True)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._live.add(task)
        try:
            request = await self._request(reader)
            if isinstance(request, AgiProtocolError):  # a whole header, refused
                await _fail(AgiChannel(reader, writer), wait=self.header_timeout)
            elif request is not None:
                self.served += 1
                lines: list[str] | None = [] if log.isEnabledFor(logging.DEBUG) else None
                await self.run_route(AgiChannel(reader, writer, lines), request)
                if lines is not None:
                    log.debug("FastAGI transcript of %s:\n%s", request.channel,
                              "\n".join(lines))
        finally:
            if task is not None:
                self._live.discard(task)
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def _request(self, reader: asyncio.StreamReader,
                       ) -> AgiRequest | AgiProtocolError | None:
        """The parsed header; the error when a whole header was refused; None when the peer
        closed or stalled (each logged)."""
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\n\n"), self.header_timeout)
            log.debug("FastAGI header: %r", raw)
            return protocol.parse_request(raw)
        except (asyncio.IncompleteReadError, ConnectionError):
            reason = "closed before the header ended"
        except TimeoutError:
            reason = f"no complete header in {self.header_timeout:g} s"
        except asyncio.LimitOverrunError:
            reason = f"header over {self.max_header} bytes"
        except AgiProtocolError as err:
            self.dropped += 1
            log.info("FastAGI: request refused: %s", err)
            return err
        self.dropped += 1
        log.info("FastAGI: connection dropped: %s", reason)
        return None

    async def run_route(self, agi: AgiChannel, request: AgiRequest) -> None:
        """Run the route of ``request``; on any failure set ACDKIT_STATUS=failed."""
        handler = self.routes.get(request.route)
        if handler is None:
            log.warning("FastAGI: no route %r (channel %s)", request.route, request.channel)
            await _fail(agi)
            return
        log.info("FastAGI: %s on %s %s", request.route, request.channel,
                 dict(request.params))
        try:
            await handler(agi, request)
        except ChannelHungUp:
            log.info("FastAGI: %s: the caller hung up (%s)", request.route, request.channel)
        except Exception:
            log.exception("FastAGI: route %s failed on %s", request.route, request.channel)
            await _fail(agi)


async def _fail(agi: AgiChannel, wait: float = REPLY_TIMEOUT) -> None:
    if agi.hung_up:
        return
    with contextlib.suppress(Exception):
        await agi.set_variable(dialplan_vars.STATUS, dialplan_vars.STATUS_FAILED, wait=wait)
