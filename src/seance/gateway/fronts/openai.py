"""OpenAI's API: /v1/chat/completions, /v1/completions, /v1/embeddings — the same format in and out,
so the body goes to the router as it came (bytes too, for the pass-through) and the answer comes
back as the provider's adapter made it."""

from __future__ import annotations

from typing import Any

from seance.gateway.asgi import Send, relay, send_bytes
from seance.gateway.context import RequestContext
from seance.gateway.errors import GatewayError
from seance.gateway.formats.sse import DONE
from seance.gateway.fronts import route_headers
from seance.gateway.providers.base import Call, Operation
from seance.gateway.routing.deployments import Deployment
from seance.gateway.routing.router import Router, make_call


def error_body(exc: GatewayError) -> bytes:
    return exc.body()


def error_event(exc: GatewayError) -> bytes:
    return b"data: " + exc.body() + b"\n\n" + DONE


class OpenAIFront:
    def __init__(self, router: Router, want_usage: bool = False) -> None:
        self.router = router
        self.want_usage = want_usage  # a hook needs the usage of every stream

    async def handle(self, ctx: RequestContext, op: Operation, body: dict[str, Any], raw: bytes, send: Send) -> None:
        stream = ctx.stream
        drop = ctx.gateway_fields.get("drop_params") if ctx.gateway_fields else None
        drop = drop if isinstance(drop, bool) else None

        def build(deployment: Deployment) -> Call:
            return make_call(op, body, raw, stream, deployment, ctx.client_headers, drop, self.want_usage)

        if stream:
            upstream = await self.router.stream(ctx, op, build)
            route_headers(ctx)
            await relay(send, upstream, ctx, error_event)
            return
        reply = await self.router.complete(ctx, op, build)
        ctx.usage = reply.usage
        route_headers(ctx, reply.usage)
        await send_bytes(send, ctx, 200, reply.body, reply.content_type.encode())
