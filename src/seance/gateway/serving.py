"""The server side of HTTP/1.1: uvicorn's httptools protocol with the bounds an internet-facing
proxy needs, so that no client can hold the gateway's memory, descriptors or liveness probes.

    connection ─► (at the cap: close the longest-idle connection, or 503 when none is idle)
        head    ─► buffered until complete, then parsed in one piece (linear, not quadratic);
                   over `max_head_bytes`: 431; not complete within `header_timeout`: 408
        body    ─► each `body_timeout` window must bring `body_min_rate` bytes a second: else 408
        answer  ─► HTTP/1.0 clients get it without chunked encoding, ended by closing
        idle    ─► closed after `keepalive_timeout` (uvicorn's keep-alive timer)

Refusals the parser makes (a bad Content-Length, two of them, a bad chunk size) answer in the
OpenAI error envelope like everything else. Normal requests pay nothing: no timer is armed for a
request whose head and body arrive in one read, and a complete head is fed to the parser as is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from seance.gateway.errors import BadRequest, GatewayError

log = logging.getLogger("seance.gateway")


@dataclass(frozen=True)
class ServingLimits:
    max_head_bytes: int = 64 * 1024  # request line and headers
    header_timeout: float = 30.0  # from the connection (or a request's first byte) to its last header
    body_timeout: float = 30.0  # the window over which body_min_rate is measured
    body_min_rate: int = 1024  # bytes a second
    keepalive_timeout: float = 75.0  # above the 60 s idle timeout of common load balancers
    max_connections: int = 4096  # per process; see server.default_max_connections


class Connections:
    """This process's connections that serve no request now (waiting for a head), oldest first:
    at the cap, the oldest of them makes room for a new connection, as nginx reuses keep-alive
    connections, so a flood of idle sockets cannot lock out a real client or a health probe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.idle: dict[GatewayProtocol, None] = {}


class GatewayProtocol(HttpToolsProtocol):
    limits: ClassVar[ServingLimits] = ServingLimits()
    pool: ClassVar[Connections] = Connections(ServingLimits.max_connections)

    @classmethod
    def bound(cls, limits: ServingLimits) -> type[GatewayProtocol]:
        """The protocol class uvicorn instantiates per connection, with these limits."""
        # uvicorn makes each request's cycle from its module's name for the class: pointed at the
        # subclass here, so a cycle is made as one (changing an object's class afterwards cost
        # more than the subclass saves: attribute access on it is no longer specialised)
        httptools_impl.RequestResponseCycle = GatewayCycle  # type: ignore[misc]
        return type("GatewayProtocol", (cls,), {"limits": limits, "pool": Connections(limits.max_connections)})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keepalive_timeout  # type: ignore[assignment]  # a float works
        self._head = bytearray()  # a head not yet complete; starts with `_skip` bytes already parsed
        self._skip = 0
        self._reading_head = True  # between messages, or inside a head
        self._headed: Any = None  # the scope of the last message whose headers were complete
        self._in_body = False
        self._timer: asyncio.TimerHandle | None = None
        self._body_bytes = 0
        self._window_bytes = 0
        self._done = False  # refused or timed out: ignore whatever else comes
        self._running: RequestResponseCycle | None = None  # the cycle a pipelined request waits behind

    # -- connections --

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        pool = self.pool
        if len(self.connections) > pool.limit:
            victim = next(iter(pool.idle), None)
            if victim is None:
                message = f"the gateway is at its limit of {pool.limit} connections; retry shortly"
                self._refuse(503, message, "too_many_connections", retry_after=True)
                return
            victim._drop()
        pool.idle[self] = None
        self._timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.idle.pop(self, None)
        self._cancel_timer()
        # uvicorn tells only its latest cycle: with a request pipelined behind a running one, the
        # running one would go on writing to the closed transport (three tracebacks per client)
        running = self._running
        if running is not None and running is not self.cycle and not running.response_complete:
            running.disconnected = True
            running.message_event.set()
        for cycle in (self.cycle, running):
            if isinstance(cycle, GatewayCycle) and cycle.on_lost is not None and not cycle.response_complete:
                cycle.on_lost()  # the app abandons its upstream call (or stream) unless it ends soon
        super().connection_lost(exc)

    def _drop(self) -> None:
        """Close an idle connection to make room (RFC 9112 9.3: a server may close an idle one)."""
        self.pool.idle.pop(self, None)
        self._done = True
        self.transport.close()

    # -- reading --
    # Measured with bench/instructions.py: each callback overridden with a super() call cost about
    # 1,500 instructions a request; these overrides are the ones the bounds need, and they call the
    # base class's method directly. (All of them together were 15k instructions, 3.4 % of a request.)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        if self._reading_head:
            # the common case: a whole head in one read, parsed without a copy
            if self._head or (data.find(b"\n\r\n") == -1 and data.find(b"\n\n") == -1):
                self._read_head(data)
                return
        elif self._timer is not None:  # a body spread over reads: what came counts for its rate
            self._body_bytes += len(data)
        self._feed(data)

    def _read_head(self, data: bytes) -> None:
        """A head that does not end in this read: kept until it does, within the limits."""
        head = self._head
        start = max(0, len(head) - 2)
        head += data
        if head.find(b"\n\r\n", start) != -1 or head.find(b"\n\n", start) != -1:
            self._head, skip, self._skip = bytearray(), self._skip, 0
            self._feed(bytes(head[skip:]))
            return
        self._unset_keepalive_if_required()
        if len(head) - self._skip > self.limits.max_head_bytes:
            limit = self.limits.max_head_bytes
            message = f"the request line and headers are larger than the gateway's limit of {limit} bytes"
            self._refuse(431, message, "request_header_fields_too_large")
        elif self._timer is None:
            self._timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def _feed(self, data: bytes) -> None:
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass  # no protocol upgrades here: the request is served as plain HTTP/1.1
        except httptools.HttpParserError as exc:
            self._refuse(400, f"the request is not valid HTTP/1.1: {exc}", "invalid_http_request")
            return
        if self.scope is not self._headed:
            # uvicorn made a new scope for a message whose headers are not complete: a pipelined
            # head began in this read; keep its last bytes to find its end
            tail = data[-3:]
            self._head, self._skip = bytearray(tail), len(tail)
        elif self._in_body and self._timer is None and not self._done:
            self._body_bytes = self._window_bytes = 0
            self._timer = self.loop.call_later(self.limits.body_timeout, self._body_window)

    # -- parser callbacks (on_message_begin, on_url, on_header, on_body: uvicorn's own) --

    def on_headers_complete(self) -> None:
        self._headed = self.scope
        self._reading_head = False
        self._in_body = True
        self.pool.idle.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cycle = self.cycle
        self._running = cycle if cycle is not None and not cycle.response_complete else None
        _on_headers_complete(self)
        if self.scope.get("http_version") == "1.0" and self.cycle is not None:
            self.cycle.__class__ = _HTTP10Cycle

    def on_message_complete(self) -> None:
        self._in_body = False
        self._reading_head = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        _on_message_complete(self)

    def on_response_complete(self) -> None:
        _on_response_complete(self)
        if not self.pipeline and not self._in_body and not self.transport.is_closing():
            self.pool.idle[self] = None

    # -- timeouts and refusals --

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timeout(self) -> None:
        self._timer = None
        if self._head or self.scope is not self._headed:
            timeout = self.limits.header_timeout
            self._refuse(408, f"the request headers did not arrive within {timeout:g} s", "request_timeout")
        elif self.cycle is None:  # a connection that never sent a byte
            self._drop()

    def _body_window(self) -> None:
        self._timer = None
        if not self._in_body or self._done:
            return
        needed = self.limits.body_min_rate * self.limits.body_timeout
        if self.flow.read_paused or self._body_bytes - self._window_bytes >= needed:
            # enough came (or the gateway holds the reading back, not the client): next window
            self._window_bytes = self._body_bytes
            self._timer = self.loop.call_later(self.limits.body_timeout, self._body_window)
            return
        rate = self.limits.body_min_rate
        self._refuse(408, f"the request body arrived slower than {rate} bytes a second", "request_timeout")

    def shutdown(self) -> None:
        """The server stops. uvicorn closes a connection with no request in progress without a word:
        right for a keep-alive one between requests, but one accepted in the instant of the signal,
        whose request had not been read yet, was left with no answer at all (seen in full test runs).
        A connection that never had a request gets a 503 shutting_down, then is closed."""
        if self.cycle is None and not self._done:
            self._refuse(503, "the gateway is shutting down; retry the request", "shutting_down", retry_after=True)
            return
        super().shutdown()

    def refuse_for_shutdown(self) -> None:
        """The server's grace period ends before this request got its answer: 503, then close (the
        app's disconnect watch then ends the request's task without a word)."""
        message = "the gateway is shutting down and its grace period ended before this request was answered; retry it"
        self._refuse(503, message, "shutting_down", retry_after=True)

    def _refuse(self, status: int, message: str, code: str, *, retry_after: bool = False) -> None:
        """Answer with an error and close, unless an answer is already on its way (then only close)."""
        self._done = True
        self._cancel_timer()
        self.pool.idle.pop(self, None)
        cycle = self.cycle
        answering = cycle is not None and cycle.response_started and not cycle.response_complete
        if not answering and not self.transport.is_closing():
            body = (BadRequest if status < 500 else GatewayError)(message, status=status, code=code).body()
            extra = b"retry-after: 1\r\n" if retry_after else b""
            self.transport.write(
                STATUS_LINE[status] + b"content-type: application/json\r\ncontent-length: %d\r\n"
                b"connection: close\r\n%s\r\n%s" % (len(body), extra, body)
            )
        self.transport.close()
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the application's receive() now says the client left
            cycle.message_event.set()


_on_headers_complete = HttpToolsProtocol.on_headers_complete
_on_message_complete = HttpToolsProtocol.on_message_complete
_on_response_complete = HttpToolsProtocol.on_response_complete


class GatewayCycle(RequestResponseCycle):
    """uvicorn's request/response cycle, writing an answer's head cheaper (bench/instructions.py):

    - uvicorn checks each header name and value with a regular expression: 18 searches, 20k
      instructions (5 %) of a pass-through chat request; sre scans about 40 instructions a byte.
      Its expressions are classes of single bytes, so the same check is a count of deleted bytes
      (bytes.translate, a C loop): names are checked once each and remembered (they are the
      gateway's own few), values in one pass over the finished head, where the line ends must be
      the only bytes deleted. (Joining names and values apart and checking each join cost 10k
      instructions a request more than this: two list comprehensions and a translate more.)
    - An answer with a Content-Length goes out in one write with its first body part, not two
      (a send syscall less per answer); a large part goes beside its head in one writev instead of
      being copied behind it. Streams (chunked) still get their head at once.

    Everything else (HEAD, 204/304, Connection, access log, flow control, the body) is uvicorn's."""

    head: bytes | None = None  # written with the first body part
    on_lost: Callable[[], None] | None = None  # set by the app (asgi.DisconnectWatch) while it waits upstream

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not self.response_started and not self.access_log:
            if not self.disconnected:
                self._start(message)
            return
        head = self.head
        if head is not None and kind == "http.response.body" and self.scope["method"] != "HEAD":
            self.head = None
            body = message.get("body", b"")
            more_body = message.get("more_body", False)
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                return
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            if len(body) < WRITEV_FROM:
                self.transport.write(head + body)
            else:  # one writev of both (uvloop): no copy of a large body behind its head
                self.transport.writelines((head, body))
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()
            return
        if head is not None:  # anything else after the start: the head goes first, as uvicorn would
            self.head = None
            self.transport.write(head)
        elif (
            kind == "http.response.body"
            and self.chunked_encoding
            and not self.response_complete
            and self.scope["method"] != "HEAD"
        ):
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if not self.disconnected:
                self._chunk(message)
            return
        await _send(self, message)

    def _chunk(self, message: Any) -> None:
        """A part of a chunked answer (a stream's event), as uvicorn writes it, without its frame
        of checks for other cases; a large part goes beside its chunk's size line in one writev,
        not copied between it and its line end. (A plain method: a coroutine of its own cost
        ~1k instructions a chunk more.)"""
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if body:
            parts = (b"%x\r\n" % len(body), body, b"\r\n" if more else b"\r\n" + END)
            if len(body) >= WRITEV_FROM:
                self.transport.writelines(parts)
            else:
                self.transport.write(b"".join(parts))
        elif not more:
            self.transport.write(END)
        if more:
            return
        self.response_complete = True  # (a chunked answer expects no length: nothing to compare)
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()

    def _start(self, message: Any) -> None:
        self.response_started = True
        self.waiting_for_100_continue = False
        status = message["status"]
        content = [STATUS_LINES[status]]  # each header after it as its line's start and its value
        framing = []  # the headers that say how the body is sent: acted on once all are checked
        # (bound once: `content += (line, value)` and `_LINES.get` cost ~170 instructions a header
        # more than these calls, and an answer has 10 to 16 headers)
        known, add = _LINES.get, content.append
        for headers in (self.default_headers, message.get("headers", ())):
            for name, value in headers:
                line = known(name)
                if line is None:  # a framing header (never remembered), or a name not sent before
                    line = _FRAMING_LINES.get(name) or _line_of(name)
                    if line is CONTENT_LENGTH or line is TRANSFER_ENCODING or line is CONNECTION:
                        framing.append((line, value))
                add(line)
                add(value)
        head = b"".join(content)
        # Names hold no byte a value may not (checked once), so the line ends before each header
        # are the only such bytes in a head whose values are valid.
        if len(head) - len(head.translate(None, BAD_IN_VALUES)) != len(content) - 1:
            raise RuntimeError("Invalid HTTP header value.")
        closing = False
        for line, value in framing:
            if line is CONTENT_LENGTH:
                if self.chunked_encoding is None:
                    self.expected_content_length = int(value.decode())
                    self.chunked_encoding = False
            elif line is TRANSFER_ENCODING:
                if value.lower() == b"chunked":
                    self.expected_content_length = 0
                    self.chunked_encoding = True
            elif b"close" in [token.lower().strip() for token in value.split(b",")]:  # Connection
                self.keep_alive = False
                closing = True
        if not self.keep_alive and not closing:
            head += b"\r\nconnection: close"
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status not in (204, 304):
            self.chunked_encoding = True
            head += b"\r\ntransfer-encoding: chunked"
        head += b"\r\n\r\n"
        if self.chunked_encoding is False and self.expected_content_length and self.scope["method"] != "HEAD":
            self.head = head  # its body follows at once: one write for both
        else:
            self.transport.write(head)


def _line_of(name: bytes) -> bytes:
    """The start of a header's line (its line end before it, so that a header is two parts of the
    head, not four), for a name not sent before: checked as uvicorn checks it; remembered unless it
    is a framing header's (_start must see those)."""
    if len(name.translate(None, BAD_IN_NAMES)) != len(name):
        raise RuntimeError("Invalid HTTP header name.")
    lowered = name.lower()
    line = _FRAMING_LINES.get(lowered)
    if line is None:
        line = b"\r\n" + lowered + b": "
        if len(_LINES) < MAX_NAMES:
            _LINES[name] = line
    return line


_send = RequestResponseCycle.send
END = b"0\r\n\r\n"  # a chunked answer's end
BAD_IN_NAMES = bytes(b for b in range(256) if HEADER_RE.search(bytes([b])))
BAD_IN_VALUES = bytes(b for b in range(256) if HEADER_VALUE_RE.search(bytes([b])))
STATUS_LINES = {status: line.removesuffix(b"\r\n") for status, line in STATUS_LINE.items()}
# The headers that say how the body is sent, which _start acts on (by identity): never in _LINES
CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION = b"\r\ncontent-length: ", b"\r\ntransfer-encoding: ", b"\r\nconnection: "
_FRAMING_LINES = {
    name: line
    for line in (CONTENT_LENGTH, TRANSFER_ENCODING, CONNECTION)
    for name in (line[2:-2], line[2:-2].title(), line[2:-2].upper())
}
_LINES: dict[bytes, bytes] = {}  # header names sent before (valid, not framing): their line's start
MAX_NAMES = 1024  # names come from code, not from requests: a bound all the same
# A body part from this size on is written beside its head (one writev), not copied behind it:
# an embeddings answer (19 KB) cost 19k instructions less (bench/instructions.py counts a copy
# byte by byte). Below it the copy is cheaper than the writev's setup (a chat answer, 330 bytes,
# by writev: ~1k instructions more).
WRITEV_FROM = 8192


class _HTTP10Cycle(GatewayCycle):
    """An HTTP/1.0 request's answer: HTTP/1.0 has no chunked encoding (RFC 9112 7.1, 7.3), so an
    answer without a length (a stream) goes as it is and ends when the connection closes."""

    until_close = False

    async def send(self, message: Any) -> None:
        if not self.response_started and message["type"] == "http.response.start":
            if not any(name.lower() == b"content-length" for name, _ in message.get("headers", ())):
                self.chunked_encoding = False
                self.until_close = True
        elif self.until_close and message["type"] == "http.response.body" and not self.response_complete:
            if self.flow.write_paused and not self.disconnected:
                await self.flow.drain()
            if self.disconnected:
                return
            self.transport.write(message.get("body", b""))
            if not message.get("more_body", False):
                self.response_complete = True
                self.message_event.set()
                self.transport.close()
                self.on_response()
            return
        await super().send(message)
