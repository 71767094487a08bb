"""Anthropic's Messages API: /v1/messages and /v1/messages/count_tokens, to any provider.

Per deployment: an Anthropic upstream gets the body as it came and its answer goes back untouched;
any other is sent the request translated to OpenAI chat, and its answer (or stream) is translated
back. The choice is made for each try, so a fallback from an Anthropic group to another provider
works like any other fallback.
"""

from __future__ import annotations

from typing import Any

from seance.gateway.asgi import Send, relay, send_bytes
from seance.gateway.context import RequestContext
from seance.gateway.formats.anthropic import error_body, error_event
from seance.gateway.formats.anthropic.messages import from_openai_response, to_openai_request
from seance.gateway.formats.anthropic.stream import OpenAIToAnthropicStream
from seance.gateway.fronts import route_headers
from seance.gateway.providers.base import Call, StreamTranslator
from seance.gateway.routing.deployments import Deployment
from seance.gateway.routing.router import Router, make_call

__all__ = ["AnthropicFront", "error_body", "error_event"]

# Anthropic's own request field of that name: not LiteLLM's gateway-level metadata
KEPT_FIELDS = frozenset({"metadata"})


def native(deployment: Deployment | None) -> bool:
    return deployment is not None and "messages" in deployment.adapter.operations


class AnthropicFront:
    def __init__(self, router: Router) -> None:
        self.router = router

    async def messages(self, ctx: RequestContext, body: dict[str, Any], raw: bytes, send: Send) -> None:
        stream = ctx.stream
        chat: dict[str, Any] | None = None

        def build(deployment: Deployment) -> Call:
            nonlocal chat
            if native(deployment):
                return make_call("messages", body, raw, stream, deployment, ctx.client_headers)
            if chat is None:
                chat = to_openai_request(body)
                if stream:
                    chat["stream"] = True
                    chat["stream_options"] = {"include_usage": True}
            return make_call("chat", chat, b"", stream, deployment, ctx.client_headers)

        if stream:
            upstream = await self.router.stream(ctx, "messages", build)
            if not native(ctx.deployment):
                upstream.translator = _Chained(upstream.translator, OpenAIToAnthropicStream(ctx.model))
            route_headers(ctx)
            await relay(send, upstream, ctx, error_event)
            return
        reply = await self.router.complete(ctx, "messages", build)
        ctx.usage = reply.usage
        route_headers(ctx, reply.usage)
        answer = reply.body if native(ctx.deployment) else from_openai_response(reply.body, body["model"])
        await send_bytes(send, ctx, 200, answer)

    async def count_tokens(self, ctx: RequestContext, body: dict[str, Any], raw: bytes, send: Send) -> None:
        def build(deployment: Deployment) -> Call:
            return make_call("count_tokens", body, raw, False, deployment, ctx.client_headers)

        reply = await self.router.complete(ctx, "count_tokens", build)
        route_headers(ctx)
        await send_bytes(send, ctx, 200, reply.body)


class _Chained(StreamTranslator):
    """An adapter's translator followed by the front's (OpenAI chunks → Anthropic events)."""

    def __init__(self, first: StreamTranslator, second: OpenAIToAnthropicStream) -> None:
        self.first, self.second = first, second

    def feed(self, data: bytes) -> bytes:
        return self.second.feed(self.first.feed(data))

    def close(self) -> bytes:
        tail = self.second.feed(self.first.close())
        self.usage = self.first.usage
        return tail + self.second.close()
