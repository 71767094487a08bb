"""A minimal Redis client for what the request path asks of Redis — the limits' two scripts, the
response cache's GET and SET: one pipelined connection per worker (RESP2, replies matched to calls
in order). redis-py spent ~0.3 ms of CPU on the two calls of a request (pool, locks, retries,
generic encoding); this spends a few tens of µs, which is what the gateway's budget for limits and
the cache with Redis allows. Off the request path (cooldowns, health checks) redis-py is used.

Commands go out as bytes: the hot callers encode the fixed part of theirs once (`bulk`, `encode`)
and send it with `Client.request` (their variable arguments formatted in), since encoding a command
argument by argument was a tenth of a cached request's instructions (bench/instructions.py).

Failures are the builtin ConnectionError and TimeoutError (the caller falls back on either); an
error reply is a ReplyError (NOSCRIPT among them). A call not answered within the client's timeout
closes the connection and fails every call behind it: a reply arriving later could otherwise answer
the wrong call. One timer per connection watches the oldest call, not one per call (making and
cancelling a timer per call cost ~4k instructions each).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

# Asks the server not to answer the command after it (and answers nothing itself).
SKIP_REPLY = b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n"


class ReplyError(Exception):
    """Redis answered with an error (`-NOSCRIPT …`, `-ERR …`)."""


class Incomplete(Exception):
    """The buffer ends inside a reply."""


def bulk(arg: bytes | str | int) -> bytes:
    """One command argument as a RESP bulk string."""
    if isinstance(arg, bytes):
        data = arg
    elif type(arg) is int:
        data = b"%d" % arg
    else:
        data = str(arg).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


def encode(args: tuple[Any, ...]) -> bytes:
    """A command: a RESP array of bulk strings."""
    return b"*%d\r\n%b" % (len(args), b"".join([bulk(arg) for arg in args]))


def parse(buffer: bytes, pos: int) -> tuple[Any, int]:
    """One reply from `buffer` at `pos`: (value, position after it); Incomplete if it is not all there."""
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    kind = buffer[pos]
    if kind == 58:  # ':' integer (int() reads the digits' bytes as they are)
        return int(buffer[pos + 1 : end]), end + 2
    if kind == 36:  # '$' bulk string
        size = int(buffer[pos + 1 : end])
        if size < 0:
            return None, end + 2
        start = end + 2
        stop = start + size
        if len(buffer) < stop + 2:
            raise Incomplete
        return bytes(buffer[start:stop]), stop + 2
    if kind == 42:  # '*' array
        count = int(buffer[pos + 1 : end])
        pos = end + 2
        items: list[Any] = []
        for _ in range(count):
            end = buffer.find(b"\r\n", pos)
            if end < 0:
                raise Incomplete
            if buffer[pos] == 58:  # an integer (the limits' replies are arrays of them): inline
                items.append(int(buffer[pos + 1 : end]))
                pos = end + 2
            else:
                item, pos = parse(buffer, pos)
                items.append(item)
        return (items if count >= 0 else None), pos
    if kind == 43:  # '+' simple string
        return buffer[pos + 1 : end].decode(), end + 2
    if kind == 45:  # '-' error
        return ReplyError(buffer[pos + 1 : end].decode(errors="replace")), end + 2
    raise ConnectionError(f"Redis sent a reply this client cannot read (type {chr(kind)!r})")


class Waiter(Protocol):
    """What waits for a reply: an asyncio Future, or an object of the caller's that takes the reply
    without a task waking up for it (`Client.send_nowait`'s `waiter`)."""

    def done(self) -> bool: ...

    def set_result(self, value: Any, /) -> None: ...

    def set_exception(self, error: BaseException, /) -> None: ...


class _Connection(asyncio.Protocol):
    def __init__(self, timeout: float = 30.0) -> None:
        self.transport: asyncio.Transport | None = None
        self.timeout = timeout
        # one per call sent, in order; None for a call whose reply is dropped (Client.send_nowait)
        self.waiting: deque[Waiter | None] = deque()
        self.deadlines: deque[float] = deque()  # the loop's time by which each call must be answered
        self.rest = b""  # the start of a reply whose end has not arrived yet
        self.closed = False
        # the server knows CLIENT REPLY SKIP (Client.send_unanswered); None: not asked yet
        self.skips: bool | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        if self.rest:
            data = self.rest + data
            self.rest = b""
        waiting, deadlines = self.waiting, self.deadlines
        pos = 0
        try:
            while pos < len(data):
                value, pos = parse(data, pos)
                future = waiting.popleft()
                deadlines.popleft()
                if future is not None and not future.done():
                    if type(value) is ReplyError:
                        future.set_exception(value)
                    else:
                        future.set_result(value)
        except Incomplete:
            self.rest = data[pos:]
        except (ConnectionError, IndexError, ValueError) as exc:
            self.fail(ConnectionError(f"Redis connection out of step: {exc}"))

    def eof_received(self) -> bool:
        self.fail(ConnectionError("Redis closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError("the connection to Redis was closed"))

    def fail(self, error: Exception) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.deadlines.clear()
        while self.waiting:
            future = self.waiting.popleft()
            if future is not None and not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def send(self, data: bytes) -> asyncio.Future[Any]:
        """Send one encoded command; the future is its reply."""
        future = self.loop.create_future()
        self.waiting.append(future)
        self._sent(data)
        return future

    def send_nowait(self, data: bytes, waiter: Waiter | None = None) -> None:
        self.waiting.append(waiter)
        self._sent(data)

    def _sent(self, data: bytes) -> None:
        deadline = self.loop.time() + self.timeout
        self.deadlines.append(deadline)
        if self._watchdog is None:
            self._watchdog = self.loop.call_at(deadline, self._check)
        self.transport.write(data)  # type: ignore[union-attr]

    def _check(self) -> None:
        """The watchdog: the oldest call waiting is late (fail the connection) or it is watched next.
        It stays armed while calls come and go, so a busy connection re-arms it about once per
        timeout, not once per call."""
        self._watchdog = None
        if not self.deadlines:
            return
        deadline = self.deadlines[0]
        if deadline > self.loop.time():
            self._watchdog = self.loop.call_at(deadline, self._check)
            return
        future = self.waiting[0]
        if future is not None and not future.done():
            future.set_exception(TimeoutError("Redis did not answer in time"))
        self.fail(ConnectionError("Redis did not answer an earlier call in time"))


class _SkipProbe:
    """The reply to CLIENT REPLY ON: OK, the connection may ask for replies to be skipped."""

    def __init__(self, connection: _Connection) -> None:
        self.connection = connection

    def done(self) -> bool:
        return False

    def set_result(self, value: Any) -> None:
        self.connection.skips = value == "OK"

    def set_exception(self, error: BaseException) -> None:
        pass


class Client:
    def __init__(self, url: str, timeout: float, setup: tuple[tuple[Any, ...], ...] = ()) -> None:
        """`setup`: commands every new connection runs first (the limits' SCRIPT LOADs)."""
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
        self.setup = setup
        self._connection: _Connection | None = None
        self._connecting: asyncio.Future[_Connection] | None = None

    @property
    def connected(self) -> bool:
        """A connection is open: `request` sends at once (else it connects first, when awaited)."""
        connection = self._connection
        return connection is not None and not connection.closed and not connection.transport.is_closing()  # type: ignore[union-attr]

    def call(self, *args: Any) -> Awaitable[Any]:
        """The reply to a command given as its arguments."""
        return self.request(encode(args))

    def request(self, command: bytes) -> Awaitable[Any]:
        """The reply to an encoded command (`encode`): the future itself when connected (no
        coroutine to make and step through), else a coroutine that connects first."""
        connection = self._connection
        if connection is None or connection.closed or connection.transport.is_closing():  # type: ignore[union-attr]
            return self._connect_and_send(command)
        return connection.send(command)

    async def _connect_and_send(self, command: bytes) -> Any:
        connection = await self._connect()
        return await connection.send(command)

    def send_nowait(self, command: bytes | tuple[Any, ...], waiter: Waiter | None = None) -> bool:
        """Send a command (encoded, or its arguments) whose reply no task waits for, behind the calls
        already sent; False, sending nothing, when there is no open connection (call() makes one).
        Its reply, an error reply or the connection's failure included, goes to `waiter`, or is
        read and dropped without one."""
        connection = self._connection
        if connection is None or connection.closed or connection.transport.is_closing():  # type: ignore[union-attr]
            return False
        connection.send_nowait(command if type(command) is bytes else encode(command), waiter)  # type: ignore[arg-type]
        return True

    def send_unanswered(self, command: bytes, waiter: Waiter | None = None) -> bool:
        """send_nowait for a command whose reply the caller can do without: the server is asked not
        to send it (CLIENT REPLY SKIP, in the same write) when it can, which spares this process
        reading and parsing it (~10k instructions, bench/instructions.py). Only a server that
        cannot skip sends it, to `waiter` (or dropped)."""
        connection = self._connection
        if connection is None or connection.closed or connection.transport.is_closing():  # type: ignore[union-attr]
            return False
        if connection.skips:
            connection.transport.write(SKIP_REPLY + command)  # type: ignore[union-attr]
            return True
        if connection.skips is None:
            # asked once, with the first such command (a proxy or an old server may not know it:
            # then every reply is read); learnt from the reply, not waited for
            connection.skips = False
            connection.send_nowait(encode(("CLIENT", "REPLY", "ON")), _SkipProbe(connection))
        connection.send_nowait(command, waiter)
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
            loop.create_connection(lambda: _Connection(self.timeout), self.host, self.port, ssl=context),
            self.timeout,
        )
        try:
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                await connection.send(encode(("AUTH", *auth)))
            if self.db:
                await connection.send(encode(("SELECT", self.db)))
            for command in self.setup:
                await connection.send(encode(command))
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
