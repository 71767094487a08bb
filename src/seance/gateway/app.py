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
from collections.abc import Callable
from typing import Any

from seance.gateway import anthropic_front, validate
from seance.gateway.asgi import (
    MAX_BODY_BYTES,
    DisconnectWatch,
    Headers,
    Receive,
    Scope,
    Send,
    read_body,
    relay,
    send_bytes,
    send_json,
)
from seance.gateway.config import Settings
from seance.gateway.deployments import Deployments
from seance.gateway.errors import BadRequest, GatewayError, PayloadTooLarge, Unauthorized
from seance.gateway.providers.base import Operation, Reply, StreamTranslator
from seance.gateway.proxy import Attempts, Proxy
from seance.gateway.sse import DONE
from seance.gateway.upstream import Upstreams, origin_of

log = logging.getLogger("seance.gateway")

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


def _openai_error_event(exc: GatewayError) -> bytes:
    return b"data: " + exc.body() + b"\n\n" + DONE


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
                await send_json(send, 200, self._get(endpoint, path), headers)
                return
            if length > MAX_BODY_BYTES:
                raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
            raw = await read_body(receive)
            if raw is None:
                return  # the client went away
            body = validate.parse(raw, endpoint)
            watch = DisconnectWatch(receive)
            try:
                if endpoint == "messages":
                    await self._messages(body, raw, forwarded, headers, attempts, send)
                elif endpoint == "count_tokens":
                    await self._count_tokens(body, raw, forwarded, headers, attempts, send)
                else:
                    await self._forward(endpoint, body, raw, forwarded, headers, attempts, send)  # type: ignore[arg-type]
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
            await send_bytes(send, exc.status, rendered, headers)
        except Exception:
            # A bug, not bad input: still one clear answer in the client's error shape, and the
            # traceback (which holds no request data) in the log under the request id.
            log.exception("request %s failed", request_id)
            bug = GatewayError(f"internal error; the gateway log has the details under request id {request_id}")
            rendered = anthropic_front.error_body(bug) if front == "anthropic" else bug.body()
            await send_bytes(send, 500, rendered, headers)

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

    # -- the same format in and out: OpenAI's, or Anthropic's to an Anthropic upstream --

    async def _forward(
        self,
        op: Operation,
        body: dict[str, Any],
        raw: bytes,
        forwarded: dict[str, str],
        headers: Headers,
        attempts: Attempts,
        send: Send,
        error_event: Callable[[GatewayError], bytes] = _openai_error_event,
    ) -> None:
        if body.get("stream") is True:
            stream = await self.proxy.stream(op, body, raw, forwarded, attempts)
            _route_headers(headers, attempts)
            await relay(send, stream, headers, error_event)
            return
        reply = await self.proxy.complete(op, body, raw, forwarded, attempts)
        _route_headers(headers, attempts, reply)
        await send_bytes(send, 200, reply.body, headers, reply.content_type.encode())

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
            await self._forward("messages", body, raw, forwarded, headers, attempts, send, anthropic_front.error_event)
            return
        chat = anthropic_front.to_openai_request(body)
        if streaming:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
            stream = await self.proxy.stream("chat", chat, b"", forwarded, attempts)
            stream.translator = _Chained(stream.translator, anthropic_front.OpenAIToAnthropicStream(body["model"]))
            _route_headers(headers, attempts)
            await relay(send, stream, headers, anthropic_front.error_event)
            return
        reply = await self.proxy.complete("chat", chat, b"", forwarded, attempts)
        _route_headers(headers, attempts, reply)
        await send_bytes(send, 200, anthropic_front.from_openai_response(reply.body, body["model"]), headers)

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
        await send_bytes(send, 200, reply.body, headers)

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
