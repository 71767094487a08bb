"""A minimal keep-alive HTTP/1.1 client on an asyncio Protocol and httptools' response parser.

Only for `relay.py --client raw`: it measures what the relay costs when the upstream client does
no more than write one request and parse one response, so the price of a full client library on
this path can be read off beside it. No TLS, redirects, timeouts or proxies.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import httptools


class RawResponse:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.content_type = b"application/json"
        self.headers_ready: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._chunks: list[bytes] = []
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._wake()

    def finish(self) -> None:
        self._done = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        if not self.headers_ready.done():
            self.headers_ready.set_exception(error)
        self._error = error
        self.finish()

    async def _next(self) -> None:
        self._waiter = self._loop.create_future()
        await self._waiter

    async def read(self) -> bytes:
        while not self._done:
            await self._next()
        if self._error is not None:
            raise self._error
        return b"".join(self._chunks)

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                ready, self._chunks = self._chunks, []
                yield b"".join(ready)
            elif self._done:
                if self._error is not None:
                    raise self._error
                return
            else:
                await self._next()


class _Connection(asyncio.Protocol):
    def __init__(self, pool: RawPool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.response: RawResponse | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None:
            self.response.fail(ConnectionError("the upstream closed the connection"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self.response is not None:
                self.response.fail(exc)
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None and name.lower() == b"content-type":
            self.response.content_type = value

    def on_headers_complete(self) -> None:
        if self.response is not None:
            self.response.status = self.parser.get_status_code()
            self.response.headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response.feed(body)

    def on_message_complete(self) -> None:
        response, self.response = self.response, None
        if response is not None:
            response.finish()
        if self.parser.should_keep_alive():
            self.pool.idle.append(self)
        elif self.transport is not None:
            self.transport.close()


class RawPool:
    """Keep-alive connections to one host:port; a connection is reused once its answer is parsed."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: list[_Connection] = []

    async def _connection(self) -> _Connection:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        return conn

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> RawResponse:
        conn = await self._connection()
        response = RawResponse(asyncio.get_running_loop())
        conn.response = response
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        assert conn.transport is not None
        conn.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await response.headers_ready
        return response
