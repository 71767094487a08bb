"""One client request → a deployment → the provider, with retries and fallbacks.

    model group ─► pick a deployment (weighted) ─► adapter.build ─► send ─► parse | stream
        on a retryable failure before any byte reached the client: another try (another
        deployment of the group when there is one), then the fallback groups in order.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from seance.gateway.config import Settings
from seance.gateway.deployments import Deployment, Deployments
from seance.gateway.errors import GatewayError, Unauthorized, UpstreamError
from seance.gateway.providers.base import Call, Operation, Reply, StreamTranslator, UpstreamRequest, Usage
from seance.gateway.upstream import Timeout, Upstreams

T = TypeVar("T")
DEFAULT_RETRIES = 2
MAX_FOLLOW_UPS = 600  # Replicate polls; bounded by the deployment's timeout anyway
# LiteLLM-client fields that pick where a request goes: the gateway decides that from its config,
# so they are dropped rather than obeyed (or forwarded, where the provider would refuse them)
ROUTING_FIELDS = frozenset({"api_base", "base_url", "api_key", "api_version", "custom_llm_provider"})


@dataclass(slots=True)
class Attempts:
    """What the response headers report about the route taken."""

    deployment: Deployment | None = None
    retries: int = 0
    fallbacks: int = 0
    reported: bool = False  # whether the response headers carry these already


@dataclass(slots=True)
class Health:
    """The last outcome per deployment, from real traffic: /health reads it, never probes."""

    last_error: dict[str, tuple[float, str]] = field(default_factory=dict)
    last_success: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Stream:
    attempts: Attempts
    chunks: AsyncGenerator[bytes, None]
    translator: StreamTranslator


class Proxy:
    def __init__(self, settings: Settings, deployments: Deployments, upstreams: Upstreams) -> None:
        litellm = settings.file.litellm_settings
        router = settings.file.router_settings
        retries = litellm.num_retries if litellm.num_retries is not None else router.num_retries
        self.num_retries = DEFAULT_RETRIES if retries is None else retries
        self.fallbacks: dict[str, list[str]] = {}
        for rule in litellm.fallbacks:
            for source, targets in rule.items():
                self.fallbacks.setdefault(source, []).extend(targets)
        self.deployments = deployments
        self.upstreams = upstreams
        self.health = Health()
        self._timeouts: dict[tuple[float, bool], Timeout] = {}

    async def complete(
        self, op: Operation, body: dict[str, Any], raw: bytes, headers: Mapping[str, str], attempts: Attempts
    ) -> Reply:
        async def once(deployment: Deployment) -> Reply:
            call = self._call(op, body, raw, False, deployment, headers)
            return await self._complete(call, deployment)

        return await self._route(body["model"], attempts, once)

    async def stream(
        self, op: Operation, body: dict[str, Any], raw: bytes, headers: Mapping[str, str], attempts: Attempts
    ) -> Stream:
        """Opens the upstream stream (retrying as needed) and returns it before any byte is sent."""

        async def once(deployment: Deployment) -> Stream:
            call = self._call(op, body, raw, True, deployment, headers)
            return await self._open_stream(call, deployment, attempts)

        return await self._route(body["model"], attempts, once)

    def succeeded(self, deployment: Deployment) -> None:
        self.health.last_success[deployment.id] = time.time()

    def failed(self, deployment: Deployment, error: GatewayError) -> None:
        self.health.last_error[deployment.id] = (time.time(), error.message)

    # -- routing --

    async def _route(self, model: str, attempts: Attempts, once: Callable[[Deployment], Awaitable[T]]) -> T:
        groups = [model, *self.fallbacks.get(model, ())]
        error: GatewayError | None = None
        for position, name in enumerate(groups):
            group = self.deployments.lookup(name)
            failed: set[str] = set()
            for attempt in range(1 + self.num_retries):
                deployment = _pick(group, failed)
                attempts.deployment = deployment
                try:
                    result = await once(deployment)
                except GatewayError as exc:
                    self.failed(deployment, exc)
                    error = exc
                    if not exc.retryable:
                        raise
                    failed.add(deployment.id)
                    if attempt < self.num_retries:
                        attempts.retries += 1
                    continue
                self.succeeded(deployment)
                return result
            if position + 1 < len(groups):
                attempts.fallbacks += 1
        assert error is not None
        raise error

    def _call(
        self,
        op: Operation,
        body: dict[str, Any],
        raw: bytes,
        stream: bool,
        deployment: Deployment,
        headers: Mapping[str, str],
    ) -> Call:
        if deployment.missing_key:
            raise Unauthorized(deployment.missing_key, code="missing_provider_key")
        if body.keys() & ROUTING_FIELDS:
            body = {k: v for k, v in body.items() if k not in ROUTING_FIELDS}
            raw = b""
        if deployment.params:
            body = {**deployment.params, **body}
            raw = b""
        return Call(op, body, raw, stream, deployment.target, headers)

    def _timeout(self, seconds: float, stream: bool) -> Timeout:
        timeout = self._timeouts.get((seconds, stream))
        if timeout is None:
            if stream:  # a stream may last long; what must not last is silence
                timeout = Timeout(connect=min(seconds, 30), read=seconds)
            else:
                timeout = Timeout(connect=min(seconds, 30), total=seconds)
            self._timeouts[(seconds, stream)] = timeout
        return timeout

    # -- one try against one deployment --

    async def _complete(self, call: Call, deployment: Deployment) -> Reply:
        adapter = deployment.adapter
        request: UpstreamRequest = adapter.build(call)
        timeout = self._timeout(deployment.timeout, False)
        for _ in range(MAX_FOLLOW_UPS):
            response = await self.upstreams.send(request, timeout, adapter.name)
            data = await self.upstreams.read(response, adapter.name)
            if response.status >= 400:
                raise adapter.error(call, response.status, response.headers, data)
            result = adapter.parse(call, response.status, data)
            if isinstance(result, Reply):
                return result
            request = result
        raise UpstreamError(f"{adapter.name}: no answer after {MAX_FOLLOW_UPS} polls")

    async def _open_stream(self, call: Call, deployment: Deployment, attempts: Attempts) -> Stream:
        adapter = deployment.adapter
        request = adapter.build(call)
        for _ in range(MAX_FOLLOW_UPS):
            timeout = self._timeout(deployment.stream_timeout if request.stream else deployment.timeout, request.stream)
            response = await self.upstreams.send(request, timeout, adapter.name)
            if response.status >= 400:
                data = await self.upstreams.read(response, adapter.name)
                raise adapter.error(call, response.status, response.headers, data)
            if request.stream:
                chunks = self.upstreams.chunks(response, adapter.name)
                return Stream(attempts, chunks, adapter.stream(call))
            data = await self.upstreams.read(response, adapter.name)
            result = adapter.parse(call, response.status, data)
            if isinstance(result, Reply):  # finished before streaming: its body is the whole stream
                return Stream(attempts, _once(result.body), _Whole(result.usage))
            request = result
        raise UpstreamError(f"{adapter.name}: no stream after {MAX_FOLLOW_UPS} polls")


def _pick(group: Sequence[Deployment], failed: set[str]) -> Deployment:
    if len(group) == 1:
        return group[0]
    candidates = [d for d in group if d.id not in failed] or list(group)
    return random.choices(candidates, weights=[d.weight for d in candidates])[0]


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


class _Whole(StreamTranslator):
    def __init__(self, usage: Usage | None) -> None:
        self.usage = usage

    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b""
