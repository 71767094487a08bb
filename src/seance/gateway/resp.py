"""A minimal Redis client for what the request path asks of Redis — the limits' two scripts, the
response cache's GET and SET: one pipelined connection per worker (RESP2, replies matched to calls
in order). redis-py spent ~0.3 ms of CPU on the two calls of a request (pool, locks, retries,
generic encoding); this spends a few tens of µs, which is what the gateway's budget for limits and
the cache with Redis allows. Off the request path (cooldowns, health checks) redis-py is used.

Failures are the builtin ConnectionError and TimeoutError (the caller falls back on either); an
error reply is a ReplyError (NOSCRIPT among them). A call that times out closes the connection and
fails every call behind it: a reply arriving later could otherwise answer the wrong call.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit


class ReplyError(Exception):
    """Redis answered with an error (`-NOSCRIPT …`, `-ERR …`)."""


class Incomplete(Exception):
    """The buffer ends inside a reply."""


def encode(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse(buffer: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply from `buffer` at `pos`: (value, position after it); Incomplete if it is not all there."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    kind, line = buffer[pos], bytes(buffer[pos + 1 : end])
    pos = end + 2
    if kind == 58:  # ':' integer
        return int(line), pos
    if kind == 43:  # '+' simple string
        return line.decode(), pos
    if kind == 45:  # '-' error
        return ReplyError(line.decode(errors="replace")), pos
    if kind == 36:  # '$' bulk string
        size = int(line)
        if size < 0:
            return None, pos
        if len(buffer) < pos + size + 2:
            raise Incomplete
        return bytes(buffer[pos : pos + size]), pos + size + 2
    if kind == 42:  # '*' array
        count = int(line)
        items: list[Any] = []
        for _ in range(max(count, 0)):
            item, pos = parse(buffer, pos)
            items.append(item)
        return (items if count >= 0 else None), pos
    raise ConnectionError(f"Redis sent a reply this client cannot read (type {chr(kind)!r})")


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        # one per call sent, in order; None for a call nobody waits for (Client.send_nowait)
        self.waiting: deque[asyncio.Future[Any] | None] = deque()
        self.buffer = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        pos = 0
        try:
            while pos < len(buffer):
                value, pos = parse(buffer, pos)
                future = self.waiting.popleft()
                if future is not None and not future.done():
                    if isinstance(value, ReplyError):
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        except Incomplete:
            pass
        except (ConnectionError, IndexError, ValueError) as exc:
            self.fail(ConnectionError(f"Redis connection out of step: {exc}"))
            return
        del buffer[:pos]

    def eof_received(self) -> bool:
        self.fail(ConnectionError("Redis closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError("the connection to Redis was closed"))

    def fail(self, error: Exception) -> None:
        self.closed = True
        while self.waiting:
            future = self.waiting.popleft()
            if future is not None and not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        assert self.transport is not None
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.transport.write(encode(args))
        return future

    def send_nowait(self, args: tuple[Any, ...]) -> None:
        assert self.transport is not None
        self.waiting.append(None)
        self.transport.write(encode(args))


def _expire(connection: _Connection, future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("Redis did not answer in time"))
        connection.fail(ConnectionError("Redis did not answer an earlier call in time"))


class Client:
    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "valkey", "valkeys"):
            raise ValueError(f"a Redis URL starts with redis:// or rediss://, not {parts.scheme}://")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.tls = parts.scheme in ("rediss", "valkeys")
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.db = int(parts.path.strip("/") or 0)
        self.timeout = timeout
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    async def call(self, *args: Any) -> Any:
        connection = self._connection
        if connection is None or connection.closed or connection.transport.is_closing():  # type: ignore[union-attr]
            connection = await self._connect()
        future = connection.send(args)
        # a timer rather than asyncio.wait_for, which wraps every call in more futures and callbacks
        timer = asyncio.get_running_loop().call_later(self.timeout, _expire, connection, future)
        try:
            return await future
        finally:
            timer.cancel()

    def send_nowait(self, args: tuple[Any, ...]) -> bool:
        """Send a call whose reply nobody waits for (a cache write), behind the calls already sent;
        False, sending nothing, when there is no open connection (call() makes one). Its reply,
        an error reply included, is read and dropped; a connection that fails just loses it."""
        connection = self._connection
        if connection is None or connection.closed or connection.transport.is_closing():  # type: ignore[union-attr]
            return False
        connection.send_nowait(args)
        return True

    async def _connect(self) -> _Connection:
        if self._connecting is not None:  # another call is connecting: share its connection
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            connection = await self._open()
        except BaseException as exc:
            self._connecting.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            self._connecting.exception()  # retrieved: no "never retrieved" warning when no one waited
            raise
        finally:
            connecting, self._connecting = self._connecting, None
        self._connection = connection
        connecting.set_result(connection)
        return connection

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self.tls else None
        _, connection = await asyncio.wait_for(
            loop.create_connection(_Connection, self.host, self.port, ssl=context), self.timeout
        )
        try:
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                await asyncio.wait_for(connection.send(("AUTH", *auth)), self.timeout)
            if self.db:
                await asyncio.wait_for(connection.send(("SELECT", self.db)), self.timeout)
        except ReplyError as exc:
            connection.fail(ConnectionError(str(exc)))
            raise ConnectionError(f"Redis refused the connection's setup: {exc}") from None
        except BaseException:
            connection.fail(ConnectionError("setup failed"))
            raise
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.fail(ConnectionError("closed"))
            self._connection = None
