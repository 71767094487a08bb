"""A pooled HTTP/1.1 client made for the gateway's one job: relay a request to a provider.

A general client library costs most of the gateway's CPU per request; this one writes each request
in one call and parses the answer with httptools, on a plain asyncio Protocol (uvloop makes those
fast). No Task per request: timeouts are timer callbacks that fail the waiting future and close
the connection. Features are what providers need: http/https, keep-alive, content-length, chunked
and close-delimited bodies, gzip/deflate, backpressure on streams. No redirects, proxies or HEAD.

Errors: TimeoutError, CannotConnect, ConnectionClosed (the answer is incomplete), BadResponse,
InvalidRequest (nothing was sent).
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
from collections import deque
from collections.abc import Mapping
from typing import NoReturn, cast
from urllib.parse import urlsplit

import httptools

from seance.gateway.upstream import Limits, Timeout
from seance.gateway.upstream.http1_response import (
    BadResponse,
    ConnectionClosed,
    Deadlines,
    Response,
    Stale,
    TooLarge,
)

__all__ = [
    "BadResponse", "CannotConnect", "ConnectionClosed", "InvalidRequest", "Pool", "PoolFull", "Response", "Timeout",
    "TooLarge",
]  # fmt: skip

DEFAULT_LIMITS = Limits()
SKIPPED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 5.6.2
# RFC 9112 3.2 and RFC 9110 5.5: no control character (but HTAB in a value) in a target or a header
CONTROLS = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NAMES: dict[str, bool] = {}  # header names seen, checked: whether they are sent
MAX_NAMES = 1024
MAX_HEADS = 256  # per pool: the request heads kept, one per deployment and operation in practice


@functools.cache
def _system_tls() -> ssl.SSLContext:
    """One context for every https pool: loading the system's CAs takes milliseconds."""
    return ssl.create_default_context()  # verifies the certificate and the host name


class InvalidRequest(ValueError):
    """The request cannot be written as HTTP/1.1 without changing its meaning."""


class PoolFull(Exception):
    """Every connection the gateway may open to this origin stayed busy for the pool timeout."""

    def __init__(self, origin: str, limit: int, waited: float) -> None:
        super().__init__(f"all {limit} connections to {origin} stayed busy for {waited:g} s")
        self.origin, self.limit, self.waited = origin, limit, waited


class CannotConnect(Exception):
    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot connect to {host}:{port}: {reason}")
        self.host, self.port, self.reason = host, port, reason


class _Connection(asyncio.Protocol):
    """One keep-alive connection; it serves one response at a time, then goes back to its pool."""

    loop: asyncio.AbstractEventLoop  # the one it was made in (connection_made)

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        self.complete: Response | None = None  # finished by the parser, handed over after the read
        self.head_bytes = 0  # of the answer whose headers are not complete yet
        self.keep_alive = False
        self.idle_since = 0.0

    # -- transport events --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = cast(asyncio.Transport, transport)
        # its loop, read once: asyncio.get_running_loop() makes a getpid() system call each time
        # (CPython 3.11), which the pool would otherwise pay whenever the connection goes idle
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.lost(self)
        response, self.response = self.response, None
        if response is not None:
            response.lost(exc)

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # nothing was asked: a server that talks out of turn is not reusable
            self.abort()
            return
        response.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # Bytes after the end of an answer (a body longer than its Content-Length) make it as
            # wrong as a malformed one: it is failed, not handed over.
            self.complete = None
            if self.response is response:
                self.response = None
            response.fail(BadResponse(f"malformed response: {exc}"))  # a no-op if it was handed over
            self.abort()
            return
        if not response.headers_ready.done():  # the parser joins a long header quadratically: bound it
            self.head_bytes += len(data)
            if self.head_bytes > self.pool.limits.max_header_bytes:
                self.response = None
                limit = self.pool.limits.max_header_bytes
                response.fail(TooLarge(f"the answer's headers are larger than the gateway's limit of {limit} bytes"))
                self.abort()
                return
        complete, self.complete = self.complete, None
        if complete is not None:
            complete.finish()
            if self.keep_alive and self.usable():
                self.pool.release(self)
            else:
                self.abort()

    def usable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause(self, paused: bool) -> None:
        if self.transport is not None and not self.transport.is_closing():
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    # -- httptools callbacks, called from feed_data --

    # (bytes after a complete answer would start a message nobody asked for: the error raised
    # reaches data_received as an HttpParserError, and the connection is closed)

    # Each callback checks for its response inline: a helper frame per callback cost about 2 % of a
    # pass-through request (bench/instructions.py), and headers arrive one callback each.

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        if response is None:
            raise BadResponse("an answer to no request")
        response.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self.response
        if response is None:
            raise BadResponse("an answer to no request")
        response.headers_done(self.parser.get_status_code())

    def on_body(self, body: bytes) -> None:
        response = self.response
        if response is None:
            raise BadResponse("an answer to no request")
        response.feed(body)

    def on_message_complete(self) -> None:
        response = self.response
        if response is None:
            raise BadResponse("an answer to no request")
        self.complete = response
        self.response = None
        self.keep_alive = self.parser.should_keep_alive()  # the parser forgets it after this callback


class Pool:
    """Keep-alive connections to one origin (scheme://host[:port]), at most `limit` of them;
    requests wait in line when all are busy. Idle connections expire after `keepalive` seconds."""

    def __init__(
        self,
        origin: str,
        limit: int | None = None,
        keepalive: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        url = urlsplit(origin)
        if url.scheme not in ("http", "https") or not url.hostname or url.path not in ("", "/"):
            raise ValueError(f"not an http(s) origin: {origin!r}")
        self.host, self.port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
        self.host_header = url.netloc.rpartition("@")[2]  # never credentials in a Host header
        self.ssl = (ssl_context or _system_tls()) if url.scheme == "https" else None
        self.limit, self.keepalive, self.limits = limit or limits.per_origin, keepalive, limits
        self.origin = f"{url.scheme}://{self.host_header}"
        self.idle: list[_Connection] = []  # most recently used last: it is the least likely to be stale
        self.opened = 0  # connections open or opening
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self.sweeper: asyncio.TimerHandle | None = None
        self.deadlines = Deadlines()  # the timeouts of the responses in flight
        # (method, target, *headers) -> the head without its length; keeps the provider keys that
        # the deployments hold anyway
        self.heads: dict[tuple[object, ...], bytes] = {}
        self.closed = False

    async def request(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes | None, timeout: Timeout
    ) -> Response:
        """Send a request and return its response once the headers are in; read the body with
        response.read() or response.chunks(). Cancelling closes the connection."""
        head = self._head(method, target, headers, body)
        data = head + body if body else head
        loop = asyncio.get_running_loop()
        for fresh in (False, True):
            conn, reused = await self._acquire(timeout.connect, fresh, loop)
            assert conn.transport is not None
            response = Response(
                conn, loop, timeout.total, timeout.read, reused, self.limits.max_body_bytes, self.deadlines
            )
            conn.response = response
            conn.head_bytes = 0
            conn.transport.write(data)  # one write: head and body leave in one segment (TCP_NODELAY)
            try:
                await response.headers_ready
            except Stale:  # the server closed a pooled connection as we reused it: once more, anew
                continue
            except BaseException:
                response.close()
                raise
            return response
        raise ConnectionClosed("the connection closed before the answer began")

    def _head(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> bytes:
        # Everything but the length is the same for every request of one deployment: made and
        # checked once (making it each time was ~4k instructions, 1 % of a pass-through request:
        # bench/instructions.py), then found again by its parts.
        key = (method, target, *headers.items())
        fixed = self.heads.get(key)
        if fixed is None:
            fixed = self._fixed(method, target, headers)
            if len(self.heads) < MAX_HEADS:
                self.heads[key] = fixed
        if body is not None or method in ("POST", "PUT", "PATCH"):
            return fixed + b"content-length: %d\r\n\r\n" % (len(body) if body else 0)
        return fixed + b"\r\n"

    def _fixed(self, method: str, target: str, headers: Mapping[str, str]) -> bytes:
        """The head of a request without its Content-Length and its last line end."""
        # Adapters quote what they put in a URL and build the headers; this is the last line of
        # defence: a space, CR, LF or NUL would end the request line or a header and let the rest
        # be read as another header or another request.
        if not target.startswith("/") or " " in target or "#" in target or "\t" in target:
            raise InvalidRequest("the upstream URL has a character a request line cannot carry")
        lines = [f"{method} {target} HTTP/1.1", f"host: {self.host_header}"]
        if "accept-encoding" not in headers:
            lines.append("accept-encoding: identity")
        names = _NAMES
        for name, value in headers.items():
            sent = names.get(name)
            if sent is None:  # names come from adapters' code: each is checked once
                sent = name.lower() not in SKIPPED_HEADERS
                if not TOKEN.fullmatch(name):
                    raise InvalidRequest(f"the upstream header {name!r} has a character a header cannot carry")
                if len(names) < MAX_NAMES:
                    names[name] = sent
            if sent:
                lines.append(f"{name}: {value}")
        lines.append("")
        try:
            head = "\r\n".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidRequest("the upstream request has a character outside Latin-1") from None
        # No control character but the line ends put here, in the target or any value: counted in
        # one C pass over the head (a regular expression per value cost 40 instructions a
        # character, 1-2 % of a request: bench/instructions.py).
        if len(head) - len(head.translate(None, CONTROLS)) != 2 * (len(lines) - 1):
            self._refuse_controls(target, headers)
        return head

    @staticmethod
    def _refuse_controls(target: str, headers: Mapping[str, str]) -> NoReturn:
        if CONTROL.search(target):
            raise InvalidRequest("the upstream URL has a character a request line cannot carry")
        name = next((n for n, v in headers.items() if CONTROL.search(v)), "?")
        raise InvalidRequest(f"the upstream header {name!r} has a character a header cannot carry")

    # -- the pool --

    async def _acquire(
        self, connect_timeout: float, fresh: bool, loop: asyncio.AbstractEventLoop
    ) -> tuple[_Connection, bool]:
        if self.closed:
            raise ConnectionClosed("the pool is closed")
        now = loop.time()
        while self.idle and not fresh:  # fresh: the last pooled one was stale, do not bet again
            conn = self.idle.pop()
            if now - conn.idle_since > self.keepalive or not conn.usable():
                conn.abort()
                continue
            return conn, True
        if self.opened >= self.limit:
            # Waiting for a free connection is the gateway's own limit, not the provider's slowness:
            # it has its own bound and its own error (503 naming the limit, never a 504).
            try:
                async with asyncio.timeout(self.limits.pool_timeout):
                    while self.opened >= self.limit:
                        handed = await self._wait_turn(loop)
                        if handed is not None and handed.usable():
                            return handed, True
            except TimeoutError:
                raise PoolFull(self.origin, self.limit, self.limits.pool_timeout) from None
        async with asyncio.timeout(connect_timeout):
            self.opened += 1
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    self.host,
                    self.port,
                    ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None,
                )
            except BaseException as exc:
                self.opened -= 1
                self._pass_on(None)
                if isinstance(exc, OSError):
                    raise CannotConnect(self.host, self.port, exc.strerror or str(exc) or type(exc).__name__) from exc
                raise
        return conn, False

    async def _wait_turn(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self.waiters.append(waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                self._pass_on(waiter.result())
            raise

    def _pass_on(self, conn: _Connection | None) -> None:
        """Give a released connection (or, with None, a freed slot) to the first one waiting."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle(conn)

    def release(self, conn: _Connection) -> None:
        if self.closed:
            conn.abort()
        else:
            self._pass_on(conn)

    def _idle(self, conn: _Connection) -> None:
        loop = conn.loop
        conn.idle_since = loop.time()
        self.idle.append(conn)
        if self.sweeper is None:
            self.sweeper = loop.call_later(self.keepalive, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle too long, so that a quiet gateway holds no sockets for nothing."""
        self.sweeper = None
        deadline = asyncio.get_running_loop().time() - self.keepalive
        expired = [conn for conn in self.idle if conn.idle_since <= deadline]
        self.idle = [conn for conn in self.idle if conn.idle_since > deadline]
        for conn in expired:
            conn.abort()
        if self.idle:
            self.sweeper = asyncio.get_running_loop().call_later(self.keepalive, self._sweep)

    def lost(self, conn: _Connection) -> None:
        self.opened -= 1
        if conn in self.idle:
            self.idle.remove(conn)
        self._pass_on(None)

    def close(self) -> None:
        self.closed = True
        if self.sweeper is not None:
            self.sweeper.cancel()
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.abort()
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionClosed("the pool is closed"))
