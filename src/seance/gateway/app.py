"""The gateway's HTTP front: a plain ASGI app (no framework on the hot path).

    HTTP in ─► route ─► auth ─► read + parse body (one orjson parse) ─► proxy ─► HTTP out

Everything a handler cannot serve is raised as a GatewayError and rendered once, in `_http`.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from seance.gateway import anthropic_front, validate
from seance.gateway.config import Settings
from seance.gateway.deployments import Deployments
from seance.gateway.errors import BadRequest, GatewayError, ModelNotFound, PayloadTooLarge, Unauthorized
from seance.gateway.providers.base import Operation, Reply, StreamTranslator
from seance.gateway.proxy import Attempts, Proxy, Stream
from seance.gateway.sse import DONE
from seance.gateway.upstream import Upstreams, origin_of

log = logging.getLogger("seance.gateway")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

MAX_BODY_BYTES = 64 * 1024 * 1024
JSON = b"application/json"
SSE_HEADERS: Headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
# client headers an adapter may forward upstream
FORWARDED = frozenset({b"anthropic-version", b"anthropic-beta"})

# path -> (method, operation or endpoint name, needs auth)
ROUTES: dict[str, tuple[str, str, bool]] = {}
for _path, _route in {
    "/chat/completions": ("POST", "chat", True),
    "/completions": ("POST", "completion", True),
    "/embeddings": ("POST", "embedding", True),
    "/models": ("GET", "models", True),
    "/messages": ("POST", "messages", True),
}.items():
    ROUTES[_path] = ROUTES["/v1" + _path] = _route
ROUTES["/anthropic/v1/messages"] = ("POST", "messages", True)
ROUTES["/v1/messages/count_tokens"] = ROUTES["/anthropic/v1/messages/count_tokens"] = ("POST", "count_tokens", True)
ROUTES["/health/liveliness"] = ROUTES["/health/liveness"] = ("GET", "alive", False)
ROUTES["/health/readiness"] = ("GET", "ready", False)
ROUTES["/health"] = ("GET", "health", True)


class Gateway:
    def __init__(self, settings: Settings, *, allow_no_auth: bool = False) -> None:
        self.settings = settings
        self.deployments = Deployments(settings)
        self.upstreams = Upstreams()
        self.proxy = Proxy(settings, self.deployments, self.upstreams)
        self.master_key = settings.master_key.encode() if settings.master_key else None
        self.allow_no_auth = allow_no_auth
        self.started = int(time.time())
        self.draining = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.upstreams.open({origin_of(d.target.api_base) for d in self.deployments.all()})
                # What exists now (modules, config) lives as long as the process: keep it out of
                # the collector's reach so collections only walk per-request garbage.
                gc.collect()
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.draining = True
                await self.upstreams.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = ""
        auth = b""
        forwarded: dict[str, str] = {}
        length = 0
        for name, value in scope["headers"]:
            if name == b"authorization" or name == b"x-api-key" or name == b"api-key":
                auth = value
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
            elif name == b"content-length":
                length = int(value) if value.isdigit() else 0
            elif name in FORWARDED:
                forwarded[name.decode()] = value.decode("latin-1")
        if not request_id:
            request_id = os.urandom(16).hex()
        headers: Headers = [(b"x-request-id", request_id.encode()), (b"x-litellm-call-id", request_id.encode())]
        path = scope["path"].rstrip("/") or "/"
        route = ROUTES.get(path)
        if route is None and path.startswith(("/v1/models/", "/models/")):
            route = ("GET", "model", True)
        front = "openai"
        attempts = Attempts()
        try:
            if route is None:
                raise GatewayError(f"no route for {scope['path']}", status=404, code="not_found")
            method, endpoint, needs_auth = route
            if endpoint == "messages" or endpoint == "count_tokens":
                front = "anthropic"
            if scope["method"] != method:
                raise GatewayError(f"{scope['path']} accepts {method}", status=405, code="method_not_allowed")
            if needs_auth:
                self._authenticate(auth)
            if method == "GET":
                await _send_json(send, 200, self._get(endpoint, path), headers)
                return
            if length > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
            raw = await _read_body(receive)
            if raw is None:
                return  # the client went away
            body = validate.parse(raw, endpoint)
            watch = _DisconnectWatch(receive)
            try:
                if endpoint == "messages":
                    await self._messages(body, raw, forwarded, headers, attempts, send)
                elif endpoint == "count_tokens":
                    await self._count_tokens(body, raw, forwarded, headers, attempts, send)
                else:
                    await self._openai(endpoint, body, raw, forwarded, headers, attempts, send)  # type: ignore[arg-type]
            except asyncio.CancelledError:
                if watch.gone:
                    return  # the client left; its upstream request was cancelled with this task
                raise
            finally:
                watch.close()
        except GatewayError as exc:
            if attempts.deployment is not None:
                _route_headers(headers, attempts)
            headers.extend((k.lower().encode(), v.encode()) for k, v in exc.headers.items())
            rendered = anthropic_front.error_body(exc) if front == "anthropic" else exc.body()
            await _send(send, exc.status, rendered, headers)
        except Exception:
            # A bug, not bad input: still one clear answer in the client's error shape, and the
            # traceback (which holds no request data) in the log under the request id.
            log.exception("request %s failed", request_id)
            bug = GatewayError(f"internal error; the gateway log has the details under request id {request_id}")
            await _send(send, 500, anthropic_front.error_body(bug) if front == "anthropic" else bug.body(), headers)

    def _authenticate(self, presented: bytes) -> None:
        if self.master_key is None:
            if self.allow_no_auth:
                return
            raise Unauthorized("no master key is configured")  # unreachable: the CLI refuses to start
        if presented[:7].lower() == b"bearer ":
            presented = presented[7:].strip()
        if not presented:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
        if not hmac.compare_digest(presented, self.master_key):
            raise Unauthorized("invalid API key")

    # -- OpenAI front --

    async def _openai(
        self,
        op: Operation,
        body: dict[str, Any],
        raw: bytes,
        forwarded: dict[str, str],
        headers: Headers,
        attempts: Attempts,
        send: Send,
    ) -> None:
        if body.get("stream") is True:
            stream = await self.proxy.stream(op, body, raw, forwarded, attempts)
            _route_headers(headers, attempts)
            await _relay(send, stream, headers, _openai_error_event)
            return
        reply = await self.proxy.complete(op, body, raw, forwarded, attempts)
        _route_headers(headers, attempts, reply)
        await _send(send, 200, reply.body, headers, reply.content_type.encode())

    # -- Anthropic front: /v1/messages --

    async def _messages(
        self,
        body: dict[str, Any],
        raw: bytes,
        forwarded: dict[str, str],
        headers: Headers,
        attempts: Attempts,
        send: Send,
    ) -> None:
        group = self.deployments.lookup(body["model"])
        native = all("messages" in d.adapter.operations for d in group)
        streaming = body.get("stream") is True
        if native:  # Anthropic upstream: the body and the answer pass through untouched
            if streaming:
                stream = await self.proxy.stream("messages", body, raw, forwarded, attempts)
                _route_headers(headers, attempts)
                await _relay(send, stream, headers, anthropic_front.error_event)
                return
            reply = await self.proxy.complete("messages", body, raw, forwarded, attempts)
            _route_headers(headers, attempts, reply)
            await _send(send, 200, reply.body, headers)
            return
        chat = anthropic_front.to_openai_request(body)
        if streaming:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
            stream = await self.proxy.stream("chat", chat, b"", forwarded, attempts)
            stream.translator = _Chained(stream.translator, anthropic_front.OpenAIToAnthropicStream(body["model"]))
            _route_headers(headers, attempts)
            await _relay(send, stream, headers, anthropic_front.error_event)
            return
        reply = await self.proxy.complete("chat", chat, b"", forwarded, attempts)
        _route_headers(headers, attempts, reply)
        await _send(send, 200, anthropic_front.from_openai_response(reply.body, body["model"]), headers)

    async def _count_tokens(
        self, body: dict[str, Any], raw: bytes, forwarded: dict[str, str], headers: Headers, attempts: Attempts,
        send: Send,
    ) -> None:  # fmt: skip
        for deployment in self.deployments.lookup(body["model"]):
            if "count_tokens" not in deployment.adapter.operations:
                raise BadRequest(
                    f"token counting is not offered by {deployment.target.provider}, the provider of "
                    f"'{body['model']}'"
                )
        reply = await self.proxy.complete("count_tokens", body, raw, forwarded, attempts)
        _route_headers(headers, attempts)
        await _send(send, 200, reply.body, headers)

    # -- GET endpoints --

    def _get(self, endpoint: str, path: str) -> Any:
        if endpoint == "alive":
            return "I'm alive!"
        if endpoint == "ready":
            if self.draining:
                raise GatewayError("shutting down", status=503, code="draining")
            return {"status": "healthy", "db": "Not connected", "cache": None}
        if endpoint == "models":
            return {"object": "list", "data": [self._model(name) for name in self.deployments.model_names()]}
        if endpoint == "model":  # GET /v1/models/{id}; ids may hold slashes ("openai/gpt-4o")
            name = path.split("/models/", 1)[1]
            self.deployments.lookup(name)  # ModelNotFound (404) when it is not served
            return self._model(name)
        return self._health()

    def _model(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.started, "owned_by": "seance"}

    def _health(self) -> dict[str, Any]:
        healthy, unhealthy = [], []
        health = self.proxy.health
        for deployment in self.deployments.all():
            entry: dict[str, Any] = {
                "model": f"{deployment.target.provider}/{deployment.target.model}",
                "model_name": deployment.model_name,
                "model_id": deployment.id,
                "api_base": deployment.target.api_base,
            }
            error = health.last_error.get(deployment.id)
            success = health.last_success.get(deployment.id, 0.0)
            if deployment.missing_key:
                unhealthy.append({**entry, "error": deployment.missing_key})
            elif error is not None and error[0] > success:
                unhealthy.append({**entry, "error": error[1], "since": int(error[0])})
            else:
                healthy.append(entry)
        return {
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy),
            "unhealthy_count": len(unhealthy),
        }


class _Chained(StreamTranslator):
    """An adapter's translator followed by the Anthropic front's (OpenAI chunks → Anthropic events)."""

    def __init__(self, first: StreamTranslator, second: Any) -> None:
        self.first, self.second = first, second

    def feed(self, data: bytes) -> bytes:
        return bytes(self.second.feed(self.first.feed(data)))

    def close(self) -> bytes:
        tail = self.second.feed(self.first.close())
        self.usage = self.first.usage
        return bytes(tail + self.second.close())


async def _read_body(receive: Receive) -> bytes | None:
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


class _DisconnectWatch:
    """Cancels the request's task when the client disconnects, so that the upstream call (or
    stream) in progress is abandoned and its connection closed.

    Watching needs a task waiting on `receive()`. Most answers come back within milliseconds, so
    the task is only started once the request has lasted `DELAY`: until then a timer, which costs
    far less than a task, is all a request pays."""

    DELAY = 0.05

    def __init__(self, receive: Receive) -> None:
        self.task = asyncio.current_task()
        self.receive = receive
        self.watcher: asyncio.Future[Any] | None = None
        self.timer = asyncio.get_running_loop().call_later(self.DELAY, self._start)

    def _start(self) -> None:
        self.watcher = asyncio.ensure_future(self.receive())
        self.watcher.add_done_callback(self._gone)

    def _gone(self, watcher: asyncio.Future[Any]) -> None:
        if not watcher.cancelled() and self.task is not None:
            self.task.cancel()

    @property
    def gone(self) -> bool:
        return self.watcher is not None and self.watcher.done() and not self.watcher.cancelled()

    def close(self) -> None:
        self.timer.cancel()
        if self.watcher is not None:
            self.watcher.remove_done_callback(self._gone)
            self.watcher.cancel()


async def _relay(
    send: Send,
    stream: Stream,
    headers: Headers,
    error_event: Callable[[GatewayError], bytes],
) -> None:
    """Forward a stream chunk by chunk; a failure after the start ends it with an error event."""
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + headers})
    translator = stream.translator
    try:
        async for chunk in stream.chunks:
            out = translator.feed(chunk)
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
        tail = translator.close()
    except GatewayError as exc:
        tail = error_event(exc)
    except Exception:  # a bug in a translator must still end the stream with an error event
        log.exception("stream translation failed")
        tail = error_event(GatewayError("internal error while translating the provider's stream"))
    await send({"type": "http.response.body", "body": tail, "more_body": False})


def _openai_error_event(exc: GatewayError) -> bytes:
    return b"data: " + exc.body() + b"\n\n" + DONE


def _route_headers(headers: Headers, attempts: Attempts, reply: Reply | None = None) -> None:
    if attempts.reported:
        return
    attempts.reported = True
    if attempts.deployment is not None:
        headers.append((b"x-litellm-model-id", attempts.deployment.id.encode()))
        if reply is not None and (cost := attempts.deployment.cost(reply.usage)) is not None:
            headers.append((b"x-litellm-response-cost", repr(cost).encode()))
    headers.append((b"x-litellm-attempted-retries", str(attempts.retries).encode()))
    headers.append((b"x-litellm-attempted-fallbacks", str(attempts.fallbacks).encode()))


async def _send(send: Send, status: int, body: bytes, headers: Headers, content_type: bytes = JSON) -> None:
    headers.append((b"content-type", content_type))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, data: Any, headers: Headers) -> None:
    await _send(send, status, orjson.dumps(data), headers)


__all__ = ["Gateway", "ModelNotFound", "Reply"]
