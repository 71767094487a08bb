"""A minimal Redis client for what the request path asks of Redis — the limits' two scripts, the
response cache's GET and SET: one pipelined connection per worker and server, shared by every
Client of that server in the event loop (RESP2, replies matched to calls in order). redis-py spent
~0.3 ms of CPU on the two calls of a request (pool, locks, retries, generic encoding); this spends a
few tens of µs, which is what the gateway's budget for limits and the cache with Redis allows. Off
the request path (cooldowns, health checks) redis-py is used.

Commands go out as bytes: the hot callers encode the fixed part of theirs once (`bulk`, `encode`)
and send it with `Client.request` (their variable arguments formatted in), since encoding a command
argument by argument was a tenth of a cached request's instructions (bench/instructions.py).

One connection, not one per feature, and its writes coalesced: what the calls of one turn of the
event loop send (a request's cache lookup and limits script; under load, those of every request that
turn) goes out in one write (flush, on the loop's next turn), read by Redis in one read and answered
in one write. Measured as both processes' CPU time (user and system) under wrk, the seance-all-redis
config with a key with rpm, tpm and parallel limits, every request a cache miss: at c=64 Redis spent
~61-70 µs a request and the gateway ~228-257 µs with a connection per feature and a write per call,
~32-35 µs and ~182-216 µs with one coalesced connection (one connection alone, writes not coalesced:
no change); at c=1, Redis ~127-148 -> ~88-95 µs and the gateway ~381-480 -> ~300-317 µs (a busy
machine: the ratios, not the values). What callgrind counts (user space only, one request at a
time) does not move beyond its noise (-1 % to +2 %): the saving is in system calls.

Commands whose replies the server skips (the limits' release, the cache's SET: sent after the
answer) do not get a write of their own: they wait, at most DEFER, for the next call's write and go
out in front of it, so at c=1 Redis wakes once a request instead of twice. bench/run.py --only
seance,seance-all-redis --scenarios chat-c1,cache-miss-c64 --rounds 3, before and after: Redis's CPU
at c=1 0.081-0.094 -> 0.067-0.074 ms a request; at c=64 unchanged (0.021-0.025), as the writes of
one turn of the loop were already one.

Failures are the builtin ConnectionError and TimeoutError (the caller falls back on either); an
error reply is a ReplyError (NOSCRIPT among them). A call not answered within its client's timeout
fails with TimeoutError, alone: its reply, when it comes, is read and dropped. Once the oldest call
has waited the longest timeout of the connection's clients the server is taken as gone: the
connection closes and every call on it fails. One timer per connection watches the calls, not one
per call (making and cancelling a timer per call cost ~4k instructions each).
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

# Asks the server not to answer the command after it (and answers nothing itself).
SKIP_REPLY = b"*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$4\r\nSKIP\r\n"
# How long a command whose reply is skipped may wait to go out with the next write: at c=1 the next
# request's lookup comes within it, and Redis wakes once a request instead of twice.
DEFER = 0.002


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
    messages = False  # pushed messages may come between replies (a Subscription)
    on_message: Callable[[Any], None]

    def __init__(self, timeout: float = 30.0) -> None:
        self.transport: asyncio.Transport | None = None
        # how long the oldest call may wait before the server is taken as gone: the longest timeout
        # of the clients sharing the connection
        self.patience = timeout
        # one per call sent, in order; None for a call whose reply is dropped (Client.send_nowait)
        self.waiting: deque[Waiter | None] = deque()
        self.deadlines: deque[float] = deque()  # the loop's time by which each call must be answered
        self.sent: deque[float] = deque()  # the loop's time each call was sent
        self.rest = b""  # the start of a reply whose end has not arrived yet
        self.closed = False
        # the server knows CLIENT REPLY SKIP (Client.send_unanswered); None: not asked yet
        self.skips: bool | None = None
        self.setups: set[tuple[tuple[Any, ...], ...]] = set()  # the clients' setups run on it
        self.users = 0  # clients using it (Client.close closes it with the last)
        self.out: list[bytes] = []  # what this turn of the loop sends, written by flush()
        self.later: list[bytes] = []  # commands without replies, sent with the next write (defer)
        self._later_timer: asyncio.TimerHandle | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        # called once when the connection closes (what a server keeps per connection, such as
        # CLIENT TRACKING, ends with it): cache_near.py's copies
        self.on_close: list[Callable[[], None]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        if self.rest:
            data = self.rest + data
            self.rest = b""
        waiting, deadlines, sent = self.waiting, self.deadlines, self.sent
        messages = self.messages
        pos = 0
        try:
            while pos < len(data):
                value, pos = parse(data, pos)
                if messages and type(value) is list and len(value) == 3 and value[0] == b"message":
                    self.on_message(value[2])  # (a Subscription's: no call waits for it)
                    continue
                future = waiting.popleft()
                deadlines.popleft()
                sent.popleft()
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
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            callback()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.deadlines.clear()
        self.sent.clear()
        self.out.clear()
        self.later.clear()
        while self.waiting:
            future = self.waiting.popleft()
            if future is not None and not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def send(self, data: bytes, timeout: float) -> asyncio.Future[Any]:
        """Send one encoded command; the future is its reply, or TimeoutError after `timeout`."""
        future = self.loop.create_future()
        self.waiting.append(future)
        self._sent(data, timeout)
        return future

    def send_nowait(self, data: bytes, timeout: float, waiter: Waiter | None = None) -> None:
        self.waiting.append(waiter)
        self._sent(data, timeout)

    def _sent(self, data: bytes, timeout: float) -> None:
        now = self.loop.time()
        self.sent.append(now)
        self.deadlines.append(now + timeout)
        watchdog = self._watchdog
        if watchdog is None:
            self._watchdog = self.loop.call_at(now + timeout, self._check)
        elif now + timeout < watchdog.when():  # (a call with a shorter timeout than those before it)
            watchdog.cancel()
            self._watchdog = self.loop.call_at(now + timeout, self._check)
        self.write(data)

    def write(self, data: bytes) -> None:
        """Send `data` with whatever else this turn of the event loop sends (flush, called soon),
        behind the deferred commands."""
        out = self.out
        if not out:
            self.loop.call_soon(self.flush)
        later = self.later
        if later:
            out += later
            later.clear()
        out.append(data)

    def defer(self, data: bytes) -> None:
        """Send `data`, commands whose replies the server skips, with the next write, or alone
        after DEFER: nothing waits for them, and the commands after them still follow them."""
        later = self.later
        if not later and self._later_timer is None:
            self._later_timer = self.loop.call_later(DEFER, self._send_later)
        later.append(data)

    def _send_later(self) -> None:
        """No write came within DEFER: the deferred commands go out as one (write puts the others in
        front of the last)."""
        self._later_timer = None
        if self.later and not self.closed:
            self.write(self.later.pop())

    def flush(self) -> None:
        out = self.out
        if out and not self.closed:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))  # type: ignore[union-attr]
        out.clear()

    def _check(self) -> None:
        """The watchdog: a call past its deadline fails alone, unless it is the oldest and has
        waited the connection's patience (the server is taken as gone: every call fails); else the
        next deadline is watched. It stays armed while calls come and go, so a busy connection
        re-arms it about once per timeout, not once per call."""
        self._watchdog = None
        if not self.sent:
            return
        now = self.loop.time()
        given_up = self.sent[0] + self.patience
        if given_up <= now:
            future = self.waiting[0]
            if future is not None and not future.done():
                future.set_exception(TimeoutError("Redis did not answer in time"))
            self.fail(ConnectionError("Redis did not answer an earlier call in time"))
            return
        next_check = given_up
        for waiter, deadline in zip(self.waiting, self.deadlines, strict=True):
            if waiter is None or waiter.done():
                continue
            if deadline <= now:
                waiter.set_exception(TimeoutError("Redis did not answer in time"))
            elif deadline < next_check:
                next_check = deadline
        self._watchdog = self.loop.call_at(next_check, self._check)


C = TypeVar("C", bound=_Connection)


class Subscription(_Connection):
    """A connection in subscribe mode (RESP2): the messages of its channel go to `on_message` (their
    payload: a bulk string, or an array of them — CLIENT TRACKING's invalidations — or None), the
    replies to its own calls (SUBSCRIBE, PING) to their waiters."""

    messages = True

    def __init__(self, timeout: float, on_message: Callable[[Any], None]) -> None:
        super().__init__(timeout)
        self.on_message = on_message


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


class _Link:
    """The connection every Client of one server uses in one event loop, and its making."""

    __slots__ = ("connecting", "connection")

    def __init__(self) -> None:
        self.connection: _Connection | None = None
        self.connecting: asyncio.Future[_Connection] | None = None


# per event loop (a connection belongs to the loop that made it): per server, its link
_LINKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _Link]] = weakref.WeakKeyDictionary()


class Client:
    def __init__(self, url: str, timeout: float, setup: tuple[tuple[Any, ...], ...] = ()) -> None:
        """`timeout`: how long a call of this client waits for its reply. `setup`: commands run on
        every connection before this client's first call on it (the limits' SCRIPT LOADs). Every
        Client of the same server (address, credentials, database) shares one connection in an
        event loop."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "valkey", "valkeys"):
            raise ValueError(f"a Redis URL starts with redis:// or rediss://, not {parts.scheme}://")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.tls = parts.scheme in ("rediss", "valkeys")
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.db = int(parts.path.strip("/") or 0)
        self.address = (self.host, self.port, self.tls, self.username, self.password, self.db)
        self.timeout = timeout
        self.setup = setup
        self._connection: _Connection | None = None

    @property
    def connected(self) -> bool:
        """A connection is open: `request` sends at once (else it connects first, when awaited)."""
        connection = self._connection
        return connection is not None and not connection.closed and not connection.transport.is_closing()  # type: ignore[union-attr]

    @property
    def connection(self) -> _Connection | None:
        """The open connection this client's calls go out on, if any."""
        return self._connection if self.connected else None

    def call(self, *args: Any) -> Awaitable[Any]:
        """The reply to a command given as its arguments."""
        return self.request(encode(args))

    def request(self, command: bytes) -> Awaitable[Any]:
        """The reply to an encoded command (`encode`): the future itself when connected (no
        coroutine to make and step through), else a coroutine that connects first."""
        connection = self._connection
        if connection is None or connection.closed or connection.transport.is_closing():  # type: ignore[union-attr]
            return self._connect_and_send(command)
        return connection.send(command, self.timeout)

    async def _connect_and_send(self, command: bytes) -> Any:
        connection = await self._connect()
        return await connection.send(command, self.timeout)

    def send_nowait(self, command: bytes | tuple[Any, ...], waiter: Waiter | None = None) -> bool:
        """Send a command (encoded, or its arguments) whose reply no task waits for, behind the calls
        already sent; False, sending nothing, when there is no open connection (call() makes one).
        Its reply, an error reply or the connection's failure included, goes to `waiter`, or is
        read and dropped without one."""
        connection = self._connection
        if connection is None or connection.closed or connection.transport.is_closing():  # type: ignore[union-attr]
            return False
        connection.send_nowait(command if type(command) is bytes else encode(command), self.timeout, waiter)  # type: ignore[arg-type]
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
            connection.defer(SKIP_REPLY + command)
            return True
        if connection.skips is None:
            # asked once, with the first such command (a proxy or an old server may not know it:
            # then every reply is read); learnt from the reply, not waited for
            connection.skips = False
            connection.send_nowait(encode(("CLIENT", "REPLY", "ON")), self.timeout, _SkipProbe(connection))
        connection.send_nowait(command, self.timeout, waiter)
        return True

    async def _connect(self) -> _Connection:
        """The open connection to this client's server in this loop (made if there is none), with
        this client's setup run on it."""
        loop = asyncio.get_running_loop()
        links = _LINKS.get(loop)
        if links is None:
            links = _LINKS[loop] = {}
        link = links.get(self.address)
        if link is None:
            link = links[self.address] = _Link()
        connection = link.connection
        if connection is None or connection.closed or connection.transport.is_closing():  # type: ignore[union-attr]
            connection = await self._open_shared(link)
        if self._connection is not connection:
            connection.users += 1
            connection.patience = max(connection.patience, self.timeout)
        if self.setup and self.setup not in connection.setups:
            try:
                for command in self.setup:
                    await connection.send(encode(command), self.timeout)
            except ReplyError as exc:
                raise ConnectionError(f"Redis refused the connection's setup: {exc}") from None
            connection.setups.add(self.setup)
        self._connection = connection
        return connection

    async def _open_shared(self, link: _Link) -> _Connection:
        if link.connecting is not None:  # another call is connecting: share its connection
            return await asyncio.shield(link.connecting)
        connecting = link.connecting = asyncio.get_running_loop().create_future()
        try:
            connection = await self._open(lambda: _Connection(self.timeout))
        except BaseException as exc:
            connecting.set_exception(exc if isinstance(exc, Exception) else ConnectionError("cancelled"))
            connecting.exception()  # retrieved: no "never retrieved" warning when no one waited
            raise
        finally:
            link.connecting = None
        link.connection = connection
        connecting.set_result(connection)
        return connection

    async def subscribe(self, channel: str, on_message: Callable[[Any], None]) -> tuple[int, Subscription]:
        """A connection of its own, subscribed to `channel`: (its CLIENT ID, the connection)."""
        connection = await self._open(lambda: Subscription(self.timeout, on_message))
        try:
            ident = await connection.send(encode(("CLIENT", "ID")), self.timeout)
            await connection.send(encode(("SUBSCRIBE", channel)), self.timeout)
        except BaseException:
            connection.fail(ConnectionError("subscription failed"))
            raise
        return int(ident), connection

    async def _open(self, factory: Callable[[], C]) -> C:
        loop = asyncio.get_running_loop()
        context = ssl.create_default_context() if self.tls else None
        _, connection = await asyncio.wait_for(
            loop.create_connection(factory, self.host, self.port, ssl=context),
            self.timeout,
        )
        try:
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                await connection.send(encode(("AUTH", *auth)), self.timeout)
            if self.db:
                await connection.send(encode(("SELECT", self.db)), self.timeout)
        except ReplyError as exc:
            connection.fail(ConnectionError(str(exc)))
            raise ConnectionError(f"Redis refused the connection's setup: {exc}") from None
        except BaseException:
            connection.fail(ConnectionError("setup failed"))
            raise
        return connection

    def close(self) -> None:
        """This client is done: the connection closes with the last client using it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.users -= 1
            if connection.users <= 0:
                connection.fail(ConnectionError("closed"))
