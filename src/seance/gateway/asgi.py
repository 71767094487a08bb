"""ASGI plumbing for the gateway's handlers: reading the body, answering, relaying a stream, and
noticing a client that leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from seance.gateway.context import Headers, RequestContext
from seance.gateway.errors import GatewayError, PayloadTooLarge
from seance.gateway.routing.proxy import Stream

log = logging.getLogger("seance.gateway")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024 * 1024
JSON = b"application/json"
SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


async def read_body(receive: Receive) -> bytes | None:
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
        parts.append(chunk)
        if not message.get("more_body"):
            return b"".join(parts)


class DisconnectWatch:
    """Cancels the request's task when the client disconnects, so that the upstream call (or
    stream) in progress is abandoned and its connection closed.

    Under the gateway's own server (serving.GatewayCycle) the connection tells the watch when it is
    lost: nothing to arm until then. Elsewhere, watching needs a task waiting on `receive()`; most answers
    come back within milliseconds, so that task is only started once the request has lasted
    `DELAY`, a timer until then. (The timer and its cancel were 5.3k instructions, 1.3 % of a
    pass-through request: bench/instructions.py.)"""

    DELAY = 0.05

    def __init__(self, receive: Receive) -> None:
        self.task = asyncio.current_task()
        self.receive = receive
        self.watcher: asyncio.Future[Any] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.lost = False
        self.cycle = getattr(receive, "__self__", None)
        if self.cycle is not None and hasattr(type(self.cycle), "on_lost"):
            self.cycle.on_lost = self._lost
        else:
            self.cycle = None
            self.timer = asyncio.get_running_loop().call_later(self.DELAY, self._start)

    def _lost(self) -> None:
        # Not at once: a client that hangs up on a stream's last event leaves a request that is
        # about to end by itself, and cancelling it would abort its upstream connection instead of
        # reusing it. As with the timer, a request still running DELAY later is cancelled.
        self.lost = True
        self.timer = asyncio.get_running_loop().call_later(self.DELAY, self._cancel)

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _start(self) -> None:
        self.watcher = asyncio.ensure_future(self.receive())
        self.watcher.add_done_callback(self._gone)

    def _gone(self, watcher: asyncio.Future[Any]) -> None:
        if not watcher.cancelled() and self.task is not None:
            self.task.cancel()

    @property
    def gone(self) -> bool:
        return self.lost or (self.watcher is not None and self.watcher.done() and not self.watcher.cancelled())

    def close(self) -> None:
        if self.cycle is not None:
            self.cycle.on_lost = None
        if self.timer is not None:
            self.timer.cancel()
        if self.watcher is not None:
            self.watcher.remove_done_callback(self._gone)
            self.watcher.cancel()


class _Shutdown:
    """Set by the server when its grace period ends with streams still running: it then cancels
    their tasks, and `relay` ends each with the front's error event instead of a silent cut."""

    ending = False
    error = GatewayError(
        "the gateway is shutting down and its grace period ended before this stream did; retry the request",
        status=503,
        code="shutting_down",
    )


shutdown = _Shutdown()


async def relay(
    send: Send,
    stream: Stream,
    ctx: RequestContext,
    error_event: Callable[[GatewayError], bytes],
) -> None:
    """Forward a stream chunk by chunk; a failure after the start ends it with an error event.
    The context gets the first byte's time, the usage the stream reported, and the outcome."""
    ctx.status = 200
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + ctx.response_headers})
    translator = stream.translator
    capture = ctx.capture
    try:
        async for chunk in stream.chunks:
            out = translator.feed(chunk)
            if out:
                if ctx.client_first_byte is None:
                    ctx.client_first_byte = time.perf_counter()
                if capture is not None:
                    capture.append(out)
                await send({"type": "http.response.body", "body": out, "more_body": True})
        tail = translator.close()
        if capture is not None:
            capture.append(tail)
    except GatewayError as exc:
        tail = _stream_error(ctx, exc, error_event)
    except asyncio.CancelledError:
        if not shutdown.ending:
            # the client left: nobody to tell, but what the stream used counts (a client that
            # hangs up on the last event leaves before the stream's end, its usage already sent)
            with contextlib.suppress(Exception):
                translator.close()  # reads the usage from what it kept back
            ctx.usage = translator.usage
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()  # this cancellation is handled here: the stream ends normally
        tail = _stream_error(ctx, shutdown.error, error_event)
    except Exception:  # a bug in a translator must still end the stream with an error event
        log.exception("request %s: stream translation failed", ctx.id)
        tail = _stream_error(ctx, GatewayError("internal error while translating the provider's stream"), error_event)
    finally:
        await stream.chunks.aclose()  # an upstream answer left unfinished closes its connection now
    ctx.usage = translator.usage
    await send({"type": "http.response.body", "body": tail, "more_body": False})


def _stream_error(ctx: RequestContext, exc: GatewayError, error_event: Callable[[GatewayError], bytes]) -> bytes:
    ctx.error = exc
    deployment = ctx.deployment.id if ctx.deployment is not None else "-"
    log.warning("request %s: stream from deployment %s ended with an error event: %s", ctx.id, deployment, exc.message)
    return error_event(exc)


async def send_bytes(send: Send, ctx: RequestContext, status: int, body: bytes, content_type: bytes = JSON) -> None:
    headers = ctx.response_headers
    headers.append((b"content-type", content_type))
    headers.append((b"content-length", str(len(body)).encode()))
    ctx.status = status
    ctx.client_first_byte = time.perf_counter()
    if ctx.capture is not None:
        ctx.capture.append(body)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, ctx: RequestContext, status: int, data: Any) -> None:
    await send_bytes(send, ctx, status, orjson.dumps(data))
