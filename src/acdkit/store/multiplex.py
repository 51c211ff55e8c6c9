"""One connection to Redis that carries the commands of every caller of a process.

redis-py's asyncio client lends each command a connection from its pool and waits on it
alone: a round trip cost serve about 80-120 µs of its own CPU on the lab, most of it in that
path (pool, timeouts, retry, observability), not in the socket (docs/benchmarks.md, "One
connection for every call"). Here the commands of many callers go out on one connection in
order, each as it is issued (a pipeline's in one write), and the replies, which Redis sends
in the same order, are matched to their callers as they are read.

``MultiplexedRedis`` is redis-py's client with that path underneath: every command and every
pipeline or transaction goes through the shared connection, except those that hold their
connection or change its state (blocking reads, ``WATCH``, subscriptions, ``SELECT``,
``CLIENT``...), which still take a connection of their own from the pool. Nothing changes for
the callers: the same commands, the same replies (the client's own response callbacks), the
same errors. The connection is made by the pool's own connection class (the handshake, TLS,
ACL user, database, the primary found through the sentinels), then its socket is taken over.

A command is never retried. A reply that does not come within ``timeout`` seconds, or a
connection that breaks, fails every command still waiting on it with redis-py's
``TimeoutError`` or ``ConnectionError`` (which may have run, as with redis-py), and the next
command connects again. A demoted primary's ``READONLY`` also closes the connection, so the
next one asks the sentinels again. A caller cancelled while it waits loses its reply only:
the reply is read and dropped, and the connection stays in step for the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import hiredis
from redis.asyncio.client import Pipeline
from redis.asyncio.client import Redis as AsyncRedis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ConnectionError,
    ExecAbortError,
    InvalidResponse,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
    WatchError,
)

from acdkit.store.scripts import Script

# Commands that hold their connection (blocking reads, MULTI/EXEC around reads) or change its
# state (SELECT, CLIENT, subscriptions): these keep a pooled connection of their own. WAIT is
# not one of them: it vouches for the writes made before it on its own connection, so the
# durability fence (store/durability.py) must run where those writes ran, here; it holds the
# connection only until the replicas answer (at most redis.ack_timeout_ms).
PRIVATE = frozenset({
    "AUTH", "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "BZMPOP", "BZPOPMAX",
    "BZPOPMIN", "CLIENT", "DEBUG", "DISCARD", "EXEC", "FAILOVER", "HELLO", "MONITOR", "MULTI",
    "PSUBSCRIBE", "PSYNC", "PUNSUBSCRIBE", "QUIT", "READONLY", "READWRITE", "REPLCONF",
    "RESET", "SELECT", "SHUTDOWN", "SSUBSCRIBE", "SUBSCRIBE", "SUNSUBSCRIBE", "SYNC",
    "UNSUBSCRIBE", "UNWATCH", "WATCH"})
BLOCKING_WITH_OPTION = frozenset({"XREAD", "XREADGROUP"})  # blocking only with BLOCK
_OPTIONS_OF_THE_POOL_PATH = (NEVER_DECODE, EMPTY_RESPONSE)  # read in another way by redis-py
_MORE = object()  # hiredis: the reply is not all read yet


class Unshared(Exception):
    """The server cannot take the shared connection: the command goes through the pool."""


def shareable(args: Sequence[Any], options: Mapping[str, Any]) -> bool:
    """Whether a command may go on the shared connection (see ``PRIVATE``)."""
    name = _name(args[0])
    if name in PRIVATE or any(option in options for option in _OPTIONS_OF_THE_POOL_PATH):
        return False
    return name not in BLOCKING_WITH_OPTION or not any(
        isinstance(arg, str) and arg.upper() == "BLOCK" for arg in args[1:])


def _name(command: Any) -> str:
    text = command.decode() if isinstance(command, bytes) else str(command)
    return text.split(" ", 1)[0].upper()


class _Waiting:
    """A caller waiting for one command's reply (``count`` None) or for the list of a
    pipeline's ``count`` replies."""

    __slots__ = ("count", "deadline", "future", "replies")

    def __init__(self, future: asyncio.Future[Any], count: int | None, deadline: float) -> None:
        self.future, self.count, self.deadline = future, count, deadline
        self.replies: list[Any] = []


class _Replies(asyncio.Protocol):
    """The protocol on the shared socket: commands written as they come, replies in order."""

    def __init__(self, transport: asyncio.Transport, reader: hiredis.Reader,
                 on_lost: Any) -> None:
        self.transport, self.reader, self.on_lost = transport, reader, on_lost
        self.loop = asyncio.get_running_loop()
        self.waiting: deque[_Waiting] = deque()
        self.closed: BaseException | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._push = getattr(hiredis, "PushNotification", ())

    def send(self, chunks: Iterable[bytes], waiting: _Waiting) -> None:
        # Written at once, not gathered for the end of the loop's turn: replies that arrive
        # together wake their callers in one turn, and a caller's next command must not wait
        # for the others' work (two claims in flight would run in step, never overlapping).
        self.transport.writelines(chunks)
        self.waiting.append(waiting)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except InvalidResponse as err:
                self.fail(ConnectionError(f"Protocol error from Redis: {err}"))
                return
            if reply is _MORE:
                return
            if self._push and isinstance(reply, self._push):
                continue  # out of band (none is asked for): not a reply
            self._reply(reply)

    def _reply(self, reply: Any) -> None:
        if not self.waiting:
            self.fail(ConnectionError("Redis sent a reply nobody asked for"))
            return
        if isinstance(reply, ReadOnlyError):
            # A demoted primary (redis-py's Sentinel connection says the same): the next
            # command connects again, through the sentinels.
            self.fail(ConnectionError("The previous master is now a slave"))
            return
        head = self.waiting[0]
        if head.count is None:
            self.waiting.popleft()
            if not head.future.done():
                head.future.set_result(reply)
        else:
            head.replies.append(reply)
            if len(head.replies) == head.count:
                self.waiting.popleft()
                if not head.future.done():
                    head.future.set_result(head.replies)

    def fail(self, err: BaseException) -> None:
        """Fail every waiting caller with ``err`` and close the socket."""
        if self.closed is None:
            self.closed = err
            self.transport.close()
            self.on_lost(self)
        while self.waiting:
            waiting = self.waiting.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(err)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"Connection to Redis lost: {exc or 'closed by the server'}"))

    def eof_received(self) -> bool:
        return False  # close: Redis never half-closes


class Multiplexed:
    """One shared connection of ``pool``'s kind, made on first use and again after it breaks;
    its commands' round trips count in ``trips`` (store/primary.py ``RoundTrips``)."""

    def __init__(self, pool: ConnectionPool, *, timeout: float, trips: Any) -> None:
        self.pool, self.timeout, self.trips = pool, timeout, trips
        self._replies: _Replies | None = None
        self._connection: AbstractConnection | None = None  # the handshake's, kept with it
        self._lock = asyncio.Lock()
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.usable = True  # until a server without HELLO is met (then: the pool's path)

    async def command(self, args: Sequence[Any]) -> Any:
        """The reply to one command; a reply that is an error is raised."""
        replies, connection = await self._ready()
        reply = await self._send(replies, connection.pack_command(*args), None)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def commands(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """The replies to ``commands`` sent at once, errors as values."""
        replies, connection = await self._ready()
        got: list[Any] = await self._send(replies, connection.pack_commands(commands),
                                          len(commands))
        return got

    async def _send(self, replies: _Replies, chunks: Iterable[bytes], count: int | None) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        deadline = loop.time() + self.timeout
        replies.send(chunks, _Waiting(future, count, deadline))
        self.trips.count += 1
        if self._timer is None:
            self._timer = loop.call_at(deadline, self._check)
        return await future

    def _check(self) -> None:
        """The oldest caller has waited ``timeout``: the connection is given up."""
        self._timer = None
        replies = self._replies
        if replies is None or not replies.waiting:
            return
        loop = asyncio.get_running_loop()
        oldest = replies.waiting[0].deadline
        if oldest <= loop.time():
            replies.fail(TimeoutError("Timeout reading from Redis"))
        else:
            self._timer = loop.call_at(oldest, self._check)

    async def _ready(self) -> tuple[_Replies, AbstractConnection]:
        """The connection, made if there is none on the running loop."""
        replies, connection = self._replies, self._connection
        if replies is None or connection is None or replies.loop is not asyncio.get_running_loop():
            return await self._connect()
        return replies, connection

    async def _connect(self) -> tuple[_Replies, AbstractConnection]:
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:  # a lock serves one loop (a client may outlive one)
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            if self._replies is not None and self._connection is not None:
                if self._replies.loop is loop:
                    return self._replies, self._connection
                self.close()  # made on a loop that has ended
            made = self.pool.make_connection()  # type: ignore[no-untyped-call]
            connection = cast(AbstractConnection, made)
            await connection.connect()  # type: ignore[no-untyped-call]
            if getattr(connection, "_resp2_fallback", False):
                # A server without HELLO (before Redis 6) replies in RESP2's shapes, which the
                # client's callbacks read only on redis-py's own path: the pool's, from now on.
                await connection.disconnect()
                self.usable = False
                raise Unshared
            writer = connection._writer
            assert writer is not None
            transport = cast(asyncio.Transport, writer.transport)
            encoder = connection.encoder
            options: dict[str, Any] = {"protocolError": InvalidResponse, "notEnoughData": _MORE,
                                       "replyError": connection._parser.parse_error}
            if encoder.decode_responses:
                options.update(encoding=encoder.encoding, errors=encoder.encoding_errors)
            replies = _Replies(transport, hiredis.Reader(**options), self._lost)
            transport.set_protocol(replies)
            # The socket is ours now: redis-py's connection keeps only its packing and
            # encoder, and no longer closes (or warns about) a socket it does not own. The
            # stream writer lives as long as the socket: collected, it would close it.
            replies.writer = writer
            connection._writer = connection._reader = None
            self._connection, self._replies = connection, replies
            return replies, connection

    def _lost(self, replies: _Replies) -> None:
        if self._replies is replies:
            self._replies = self._connection = None

    def address(self) -> tuple[str, int] | None:
        """Where the shared connection goes (host, port); None while there is none."""
        connection = self._connection if self._replies is not None else None
        host, port = getattr(connection, "host", None), getattr(connection, "port", None)
        return None if host is None or port is None else (str(host), int(port))

    def close(self) -> None:
        replies, timer = self._replies, self._timer
        self._replies = self._connection = None
        self._timer = None
        # A connection made on a loop that has ended was closed with it.
        with contextlib.suppress(RuntimeError):
            if timer is not None:
                timer.cancel()
            if replies is not None:
                replies.fail(ConnectionError("Redis client closed"))


class MultiplexedRedis(AsyncRedis):
    """redis-py's asyncio client whose commands share one connection (``Multiplexed``) when
    ``multiplexed`` is set; without it, the plain client."""

    multiplexed: Multiplexed | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        shared = self.multiplexed
        if (shared is None or not shared.usable or self.single_connection_client
                or not shareable(args, options)):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        try:
            reply = await shared.command(args)
        except Unshared:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return parsed(self.response_callbacks, reply, args, options)

    def register_script(self, script: str | bytes) -> AsyncScript:  # type: ignore[override]
        """A script whose calls skip redis-py's per-call checks (store/scripts.py
        ``Script``): the pool's scripts, the callbacks' and the replay's alike."""
        return Script(self, script)

    def pipeline(self, transaction: bool = True,
                 shard_hint: str | None = None) -> MultiplexedPipeline:
        pipe = MultiplexedPipeline(self.connection_pool, self.response_callbacks, transaction,
                                   shard_hint)
        pipe.multiplexed = self.multiplexed
        return pipe

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if self.multiplexed is not None:
            self.multiplexed.close()
        await super().aclose(close_connection_pool)


class MultiplexedPipeline(Pipeline):
    """A pipeline or a transaction sent on the shared connection in one write, unless it
    watches keys or holds a private command: then on a pooled connection, as redis-py does."""

    multiplexed: Multiplexed | None = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        shared, stack = self.multiplexed, self.command_stack
        if (shared is None or not shared.usable or not stack or self.watching
                or self.connection is not None or self.scripts or self.explicit_transaction
                or not all(shareable(args, options) for args, options in stack)):
            return await super().execute(raise_on_error)
        try:
            try:
                if self.is_transaction:
                    return await self._transaction(shared, stack, raise_on_error)
                replies = await shared.commands([args for args, _ in stack])
            except Unshared:
                return await super().execute(raise_on_error)
            return self._results(stack, replies, raise_on_error)
        finally:
            await self.reset()  # type: ignore[no-untyped-call]

    async def _transaction(self, shared: Multiplexed, stack: list[Any],
                           raise_on_error: bool) -> list[Any]:
        """MULTI, the commands, EXEC in one write (redis-py's ``_execute_transaction``)."""
        replies = await shared.commands([("MULTI",), *(args for args, _ in stack), ("EXEC",)])
        queued, done = replies[1:-1], replies[-1]
        errors = [(i, reply) for i, reply in enumerate(queued)
                  if isinstance(reply, ResponseError)]
        for i, err in errors:
            self.annotate_exception(err, i + 1, stack[i][0])
        if isinstance(done, ExecAbortError) and errors:
            raise errors[0][1] from done
        if isinstance(done, ResponseError):
            raise done
        if done is None:
            raise WatchError("Watched variable changed.")
        if len(done) != len(stack):
            raise ResponseError("Wrong number of response items from pipeline execution")
        return self._results(stack, done, raise_on_error)

    def _results(self, stack: list[Any], replies: list[Any], raise_on_error: bool) -> list[Any]:
        """The replies as redis-py's pipeline returns them (its first error raised, if asked)."""
        if raise_on_error:
            self.raise_first_error(stack, replies)
        return [parsed(self.response_callbacks, reply, args, options)
                for reply, (args, options) in zip(replies, stack, strict=True)]


def parsed(callbacks: Mapping[Any, Any], reply: Any, args: Sequence[Any],
           options: Mapping[str, Any]) -> Any:
    """``reply`` as redis-py's client gives it: through the command's response callback
    (with the command's options but ``keys``, which only its client-side cache reads); an
    error stays a value."""
    callback = callbacks.get(args[0])
    if callback is None or isinstance(reply, Exception):
        return reply
    if "keys" in options:
        options = {name: value for name, value in options.items() if name != "keys"}
    return callback(reply, **options)
