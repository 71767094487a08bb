"""Model group ─► deployment, with retries and fallbacks.

    the requested group, then its fallback groups in order; in each group only the deployments that
    serve the operation (a group that serves none is skipped, the requested one answers 400):
        pick a deployment (weighted) ─► one try (proxy.py)
        a retryable failure before any byte reached the client ─► another try, on another
        deployment of the group when there is one; then the next group

Every failure that is retried or failed over is logged as a WARNING with the request id and the
deployment id, so an operator sees a provider misbehave even when the client never notices.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from seance.gateway.config import Settings
from seance.gateway.context import RequestContext
from seance.gateway.errors import BadRequest, GatewayError, Unauthorized, UpstreamError
from seance.gateway.providers.base import Call, Operation, Reply
from seance.gateway.routing.deployments import Deployment, Deployments
from seance.gateway.routing.proxy import Proxy, Stream
from seance.gateway.upstream import Transport

T = TypeVar("T")
log = logging.getLogger("seance.gateway")

# What a front asks for, per deployment: the call to make (its operation may differ from the one
# requested: /v1/messages is Anthropic's own operation on Anthropic, translated chat elsewhere).
BuildCall = Callable[[Deployment], Call]


@dataclass(slots=True)
class Health:
    """The last outcome per deployment, from real traffic: /health reads it, never probes."""

    last_error: dict[str, tuple[float, str]] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)


class Router:
    def __init__(self, settings: Settings, deployments: Deployments, transport: Transport) -> None:
        self.num_retries = settings.resolved.num_retries  # LiteLLM's layering: seance.litellm_config.resolve
        self.deployments = deployments
        self.proxy = Proxy(transport)
        self.health = Health()

    async def complete(self, ctx: RequestContext, op: Operation, build: BuildCall) -> Reply:
        async def once(deployment: Deployment) -> Reply:
            return await self.proxy.complete(ctx, build(deployment), deployment)

        return await self._route(ctx, op, once)

    async def stream(self, ctx: RequestContext, op: Operation, build: BuildCall) -> Stream:
        """Opens the upstream stream (retrying as needed) and returns it before any byte is sent."""

        async def once(deployment: Deployment) -> Stream:
            return await self.proxy.open_stream(ctx, build(deployment), deployment)

        return await self._route(ctx, op, once)

    def group(self, model: str, op: Operation) -> Sequence[Deployment]:
        """The deployments of `model` that serve `op`; a 400 when there are none."""
        group = self.deployments.lookup(model)
        serving = [d for d in group if d.serves(op)]
        if not serving:
            providers = ", ".join(sorted({d.target.provider for d in group}))
            what = _DESCRIPTIONS[op]
            raise BadRequest(f"{what} is not offered by {providers}, the provider of '{model}'", param="model")
        return serving if len(serving) < len(group) else group

    async def _route(self, ctx: RequestContext, op: Operation, once: Callable[[Deployment], Awaitable[T]]) -> T:
        assert ctx.model is not None
        groups = [ctx.model, *self.deployments.fallbacks_for(ctx.model)]
        error: GatewayError | None = None
        for position, name in enumerate(groups):
            if position == 0:
                group = self.group(name, op)
            else:
                group = [d for d in self.deployments.lookup(name) if d.serves(op)]
                if not group:
                    continue  # refused at start for explicit fallbacks; a wildcard may land here
                ctx.fallbacks += 1
                log.warning("request %s: falling back from '%s' to '%s'", ctx.id, groups[position - 1], name)
            failed: set[str] = set()
            for attempt in range(1 + self.num_retries):
                deployment = _pick(group, failed)
                ctx.deployment = deployment
                try:
                    result = await once(deployment)
                except GatewayError as exc:
                    self._failed(deployment, exc)
                    error = exc
                    if not exc.retryable:
                        raise
                    failed.add(deployment.id)
                    last = attempt == self.num_retries
                    if not last:
                        ctx.retries += 1
                    log.warning(
                        "request %s: deployment %s (%s) failed with %s: %s; %s",
                        ctx.id, deployment.id, deployment.model_name, _status(exc), exc.message,
                        "retrying" if not last else "giving up on this group",
                    )  # fmt: skip
                    continue
                self.health.last_success[deployment.id] = time.time()
                return result
        assert error is not None
        raise error

    def _failed(self, deployment: Deployment, error: GatewayError) -> None:
        self.health.last_error[deployment.id] = (time.time(), error.message)


def make_call(
    op: Operation,
    body: dict[str, Any],
    raw: bytes,
    stream: bool,
    deployment: Deployment,
    headers: Mapping[str, str],
    drop_params: bool | None = None,
    want_usage: bool = False,
) -> Call:
    """The call to one deployment: the deployment's default params under the client's own."""
    if deployment.missing_key:
        raise Unauthorized(deployment.missing_key, code="missing_provider_key")
    if deployment.params:
        body = {**deployment.params, **body}
        raw = b""
    return Call(op, body, raw, stream, deployment.target, headers, drop=drop_params, want_usage=want_usage)


def _status(exc: GatewayError) -> str:
    """The provider's own status where there was one (a 503 is shown to clients as a 502)."""
    upstream = exc.upstream_status if isinstance(exc, UpstreamError) else None
    return f"HTTP {upstream}" if upstream else f"{exc.status} ({exc.code or exc.type})"


def _pick(group: Sequence[Deployment], failed: set[str]) -> Deployment:
    if len(group) == 1:
        return group[0]
    candidates = [d for d in group if d.id not in failed] or list(group)
    return random.choices(candidates, weights=[d.weight for d in candidates])[0]


_DESCRIPTIONS: dict[str, str] = {
    "chat": "chat completions",
    "completion": "text completions (/v1/completions)",
    "embedding": "embeddings",
    "messages": "Anthropic messages",
    "count_tokens": "token counting (/v1/messages/count_tokens)",
}
