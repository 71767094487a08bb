"""One HTTP/1.1 response as the client's connection parses it: headers, then a body that is read
whole or chunk by chunk as it arrives, with backpressure, decoding and timeouts.

The connection feeds it (feed, finish, fail, lost); the caller reads it (read, next_chunk,
chunks). Timeouts are one timer callback, re-armed only when it fires early, so a stream does not
pay for a timer reset on every chunk.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import Protocol

from seance.gateway.upstream.rate_limits import RATE_LIMIT_LENGTHS, rate_limits_of

BUFFER_LIMIT = 2**20  # stop reading from the socket while this much waits for a slow consumer
# An answer compressed although the gateway asked for identity is decoded, but no read may inflate
# beyond this (a read is at most 256 KiB: 64 times that is more than text or JSON compresses), so
# a small "gzip bomb" costs an error, not gigabytes.
INFLATE_STEP_LIMIT = 16 * 2**20


class ConnectionClosed(Exception):
    """The server closed or reset the connection before the answer was complete."""


class Stale(ConnectionClosed):
    """A pooled connection closed before any byte of the answer: safe to send again elsewhere."""


class BadResponse(Exception):
    """The server's answer is not valid HTTP/1.1, or its body does not decode."""


class TooLarge(BadResponse):
    """The answer's headers, or a non-streamed body, are larger than the gateway's limits."""


class _Connection(Protocol):
    response: Response | None

    def abort(self) -> None: ...
    def pause(self, paused: bool) -> None: ...


FRAMING = frozenset({b"content-length", b"transfer-encoding", b"content-encoding"})
# the lengths of the names headers_done looks at: the framing headers' and the rate limits' (which
# share none), so that any other header costs one set lookup
NOTED_LENGTHS = frozenset(map(len, FRAMING)) | RATE_LIMIT_LENGTHS


class Deadlines:
    """The timeouts of one pool's responses in flight, checked together by one timer every TICK
    seconds while any is in flight. A timer of each response's own, armed and then cancelled at
    its end, cost 8.1k instructions, 2 % of a pass-through request (bench/instructions.py). A
    timeout fires up to TICK after it is due, never before."""

    TICK = 0.05

    def __init__(self) -> None:
        self.responses: set[Response] = set()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, response: Response, loop: asyncio.AbstractEventLoop) -> None:
        self.responses.add(response)
        if self._timer is None:
            self._timer = loop.call_later(self.TICK, self._check, loop)

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for response in [response for response in self.responses if response.overdue(now)]:
            response.expire()
        # on while any is in flight (a closed pool's too: its last answers keep their timeouts)
        self._timer = loop.call_later(self.TICK, self._check, loop) if self.responses else None


class Response:
    def __init__(
        self,
        conn: _Connection,
        loop: asyncio.AbstractEventLoop,
        total: float | None,
        idle: float | None,
        reused: bool,
        max_body: int,
        deadlines: Deadlines,
    ) -> None:
        self.status = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []  # as they come
        self._headers: dict[str, str] | None = None  # `headers`, made when first asked for
        self._declared = b""  # Content-Length, as sent
        # UpstreamResponse.rate_limits, found by headers_done (an instance's own: read every answer)
        self.rate_limits: list[tuple[bytes, bytes]] | tuple[()] = ()
        self.headers_ready: asyncio.Future[None] = loop.create_future()
        self.received = False  # any byte of it came in: it can no longer be retried
        self._conn: _Connection | None = conn  # until the message is complete, failed or closed
        self._loop = loop
        self._reused = reused
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._max_body = max_body  # for read(); streams are read as they come, of any length
        self._total = 0
        self._paused = False
        self._whole = False  # read() wants everything at once: never pause then
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._decoder: zlib._Decompress | None = None
        self._until_close = False
        start = loop.time()
        self._deadline = start + total if total else None
        self._idle, self._last = idle, start
        self._not_before = 0.0  # while the consumer is behind, the timeouts wait
        self._deadlines = deadlines  # its pool's: one timer for all its answers in flight
        if self._deadline is not None or idle:
            self._deadlines.add(self, loop)

    # -- what the caller uses --

    @property
    def headers(self) -> dict[str, str]:
        """Names in lower case, repeated headers joined by ", ", the framing of a body the gateway
        decodes left out. Made on demand: a successful answer's are never read (the proxy reads
        them for an error), and decoding every one cost ~1 % of a pass-through request."""
        headers = self._headers
        if headers is None:
            headers = {}
            for name, value in self.raw_headers:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            if self._decoder is not None:
                del headers["content-encoding"]
                headers.pop("content-length", None)  # it counted the encoded bytes
            if self.headers_ready.done():  # complete: they change no more
                self._headers = headers
        return headers

    async def read(self) -> bytes:
        """The whole body (decoded), at most the gateway's limit."""
        self._whole = True
        declared = self._declared
        if self._total > self._max_body or (declared.isdigit() and int(declared) > self._max_body):
            self._too_large()
        self._pause(False)
        while not self._done:
            await self._wait()
        if self._error is not None:
            raise self._error
        return b"".join(self._buffer)

    async def next_chunk(self) -> bytes:
        """What arrived since the last call, waiting for something when nothing has; b"" at the end."""
        while True:
            if self._buffer:
                data = self._buffer[0] if len(self._buffer) == 1 else b"".join(self._buffer)
                self._buffer.clear()
                self._buffered = 0
                self._pause(False)
                return data
            if self._done:
                if self._error is not None:
                    raise self._error
                return b""
            await self._wait()

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.next_chunk():
            yield chunk

    def close(self) -> None:
        """Stop here: an unfinished answer's connection is closed, never reused (cancel, client gone)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.response = None
            conn.abort()
        self.fail(ConnectionClosed("the response was closed before its end"))

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        except BaseException:  # cancelled: the server must see the request abandoned
            self.close()
            raise
        finally:
            self._waiter = None

    # -- what the connection calls --

    def headers_done(self, status: int) -> None:
        self.status = status
        framing: dict[bytes, bytes] = {}  # the headers that say how the body comes
        limited = False
        for name, value in self.raw_headers:
            # only a name of a framing header's length is put in lower case: a provider's answer
            # has 15-25 headers (rate limits, request ids, CDN), and each lower() made a copy
            if len(name) in NOTED_LENGTHS:
                if len(name) in RATE_LIMIT_LENGTHS:
                    limited = True
                    continue
                name = name.lower()
                if name in FRAMING:
                    framing[name] = framing[name] + b", " + value if name in framing else value
        if limited:  # (a provider's answer; the bench's upstream and most local servers send none)
            self.rate_limits = rate_limits_of(self.raw_headers)
        self._declared = framing.get(b"content-length", b"")
        self._until_close = (
            b"content-length" not in framing and b"transfer-encoding" not in framing and status not in (204, 304)
        )
        encoding = framing.get(b"content-encoding", b"").strip().lower()
        if encoding in (b"gzip", b"x-gzip", b"deflate"):  # sent although we asked for identity
            self._decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)  # detects the gzip or zlib wrapper
            self._declared = b""  # it counted the encoded bytes
        if not self.headers_ready.done():
            self.headers_ready.set_result(None)

    def feed(self, data: bytes) -> None:
        if self._done:
            return
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data, INFLATE_STEP_LIMIT)
            except zlib.error as exc:
                self._abort(BadResponse(f"the body does not decode: {exc}"))
                return
            if self._decoder.unconsumed_tail:
                self._abort(TooLarge(f"the compressed answer inflates by more than {INFLATE_STEP_LIMIT} bytes a read"))
                return
            if not data:
                return
        self._total += len(data)
        if self._whole and self._total > self._max_body:
            self._too_large()
            return
        self._buffer.append(data)
        self._buffered += len(data)
        if self._idle:
            self._last = self._loop.time()
        if self._buffered > BUFFER_LIMIT and not self._whole:
            self._pause(True)
        self._wake()

    def finish(self) -> None:
        if self._done:
            return
        if self._decoder is not None:
            try:
                tail = self._decoder.flush(INFLATE_STEP_LIMIT)
            except zlib.error as exc:
                self._abort(BadResponse(f"the body does not decode: {exc}"))
                return
            if not self._decoder.eof:
                self._abort(BadResponse("the compressed body ends before its end"))
                return
            if tail:
                self._buffer.append(tail)
        self._pause(False)  # the connection goes back to the pool: it must read again
        self._conn = None
        self._end(None)

    def fail(self, error: BaseException) -> None:
        self._conn = None
        self._end(error)

    def lost(self, exc: Exception | None) -> None:
        """The connection closed under this response."""
        self._conn = None
        if not self.headers_ready.done() and self._reused and not self.received:
            self.fail(Stale("the pooled connection was closed by the server"))
        elif self.headers_ready.done() and self._until_close and exc is None:
            self.finish()  # a body without length ends when the connection does
        else:
            self.fail(ConnectionClosed("the connection closed before the answer was complete"))

    # -- internals --

    def _end(self, error: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        self._error = error
        self._deadlines.responses.discard(self)
        if error is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(error)
        self._wake()

    def _abort(self, error: BaseException) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.response = None
            conn.abort()
        self._end(error)

    def _too_large(self) -> None:
        self._buffer.clear()
        self._abort(TooLarge(f"the answer is larger than the gateway's limit of {self._max_body} bytes"))

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _pause(self, paused: bool) -> None:
        if paused != self._paused and self._conn is not None:
            self._paused = paused
            self._conn.pause(paused)

    def _due(self) -> float:
        due = self._deadline if self._deadline is not None else float("inf")
        return min(due, self._last + self._idle) if self._idle else due

    def overdue(self, now: float) -> bool:
        if now < self._due() or now < self._not_before:
            return False
        if self._paused:  # silence because the consumer is behind, not the server: wait on
            self._not_before = now + (self._idle or 1.0)
            return False
        return True

    def expire(self) -> None:
        self._abort(TimeoutError("the server did not answer in time"))
