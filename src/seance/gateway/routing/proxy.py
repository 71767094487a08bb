"""One try of one call against one deployment: adapter.build ─► transport ─► adapter.parse | stream.

Polling providers (Replicate) answer with a follow-up request; it is sent in the same try.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from seance.gateway.context import RequestContext
from seance.gateway.errors import GatewayError, RateLimited, Redactor, Unauthorized, UpstreamError
from seance.gateway.providers.base import Call, Reply, StreamTranslator, Usage
from seance.gateway.routing.deployments import Deployment
from seance.gateway.upstream import Timeout, Transport, UpstreamResponse

T = TypeVar("T")
MAX_FOLLOW_UPS = 600  # Replicate polls; bounded by the deployment's timeout anyway


@dataclass(slots=True)
class Stream:
    """An upstream stream whose status was 2xx: no byte of it has reached the client yet."""

    chunks: AsyncGenerator[bytes, None]
    translator: StreamTranslator


class Proxy:
    """`redact` takes configured secrets out of every error that comes back from an upstream (a
    provider may echo its key): the client, the log and /health only ever see the redacted text."""

    def __init__(self, transport: Transport, redact: Redactor | None = None) -> None:
        self.transport = transport
        self.redact = redact or Redactor(())
        self._timeouts: dict[tuple[float, bool], Timeout] = {}
        # a deployment's first answer since the metrics' last push, when metrics are on (set by the
        # app: Metrics.answers): the push reads what the provider's rate limits have left from its
        # headers. The first, not the last: later answers cost a lookup, not a store and a release.
        self.answers: dict[str, UpstreamResponse] | None = None

    async def complete(
        self, ctx: RequestContext, call: Call, deployment: Deployment, seconds: float | None = None, gated: bool = False
    ) -> Reply:
        """`seconds`: the request's own timeout, over the deployment's; `gated`: the caller holds a
        place among the deployment's calls in flight, or needs none. (One coroutine, not a wrapper
        around another: a layer costs on every resume; only a deployment with max_parallel_requests
        goes through one, `_gated`.)"""
        if deployment.gate is not None and not gated:
            return await self._gated(self.complete, ctx, call, deployment, seconds, deployment.timeout)
        try:
            _check_key(deployment)
            adapter = deployment.adapter
            request = adapter.build(call)
            timeout = self._timeout(seconds or deployment.timeout, False, cache=seconds is None)
            for _ in range(MAX_FOLLOW_UPS):
                ctx.upstream_sent = time.perf_counter()
                response = await self.transport.send(request, timeout, adapter.name)
                ctx.upstream_first_byte = time.perf_counter()
                ctx.provider_limits = response.rate_limits  # (this try's: a failed one's are replaced)
                answers = self.answers
                if answers is not None and deployment.id not in answers:
                    answers[deployment.id] = response
                data = await self.transport.read(response, adapter.name)
                if response.status >= 400:
                    raise adapter.error(call, response.status, response.headers, data)
                result = adapter.parse(call, response.status, data)
                if isinstance(result, Reply):
                    return result
                request = result
            raise UpstreamError(f"{adapter.name}: no answer after {MAX_FOLLOW_UPS} polls")
        except GatewayError as exc:
            raise self.redact.error(exc)  # noqa: B904 (the same exception, its text redacted)

    async def open_stream(
        self, ctx: RequestContext, call: Call, deployment: Deployment, seconds: float | None = None, gated: bool = False
    ) -> Stream:
        """The stream once its status is 2xx, no byte of it sent on. (One coroutine, as complete().)"""
        if deployment.gate is not None and not gated:
            return await self._gated(self.open_stream, ctx, call, deployment, seconds, deployment.stream_timeout)
        try:
            _check_key(deployment)
            adapter = deployment.adapter
            request = adapter.build(call)
            for _ in range(MAX_FOLLOW_UPS):
                configured = deployment.stream_timeout if request.stream else deployment.timeout
                timeout = self._timeout(seconds or configured, request.stream, cache=seconds is None)
                ctx.upstream_sent = time.perf_counter()
                response = await self.transport.send(request, timeout, adapter.name)
                ctx.upstream_first_byte = time.perf_counter()
                ctx.provider_limits = response.rate_limits  # (this try's: a failed one's are replaced)
                answers = self.answers
                if answers is not None and deployment.id not in answers:
                    answers[deployment.id] = response
                if response.status >= 400:
                    data = await self.transport.read(response, adapter.name)
                    raise adapter.error(call, response.status, response.headers, data)
                if request.stream:
                    return self._redacted(
                        Stream(self.transport.chunks(response, adapter.name), adapter.stream(call)), deployment
                    )
                data = await self.transport.read(response, adapter.name)
                result = adapter.parse(call, response.status, data)
                if isinstance(result, Reply):  # finished before streaming: its body is the whole stream
                    return self._redacted(Stream(_once(result.body), _Whole(result.usage)), deployment)
                request = result
            raise UpstreamError(f"{adapter.name}: no stream after {MAX_FOLLOW_UPS} polls")
        except GatewayError as exc:
            raise self.redact.error(exc)  # noqa: B904 (the same exception, its text redacted)

    # litellm_params.max_parallel_requests: a call waits for a place among the deployment's calls in
    # flight (in this worker), as LiteLLM's semaphore makes it: a completion holds its place until
    # its answer is read, a stream until it has started (its status is in).

    async def _gated(
        self,
        attempt: Callable[..., Awaitable[T]],
        ctx: RequestContext,
        call: Call,
        deployment: Deployment,
        seconds: float | None,
        wait: float,
    ) -> T:
        """`attempt` (complete or open_stream) once a place is free, waited for at most `seconds` or
        `wait` (the deployment's timeout for it)."""
        gate = await _enter(deployment, seconds or wait)
        try:
            return await attempt(ctx, call, deployment, seconds, gated=True)
        finally:
            gate.release()

    def _redacted(self, stream: Stream, deployment: Deployment) -> Stream:
        """The stream, with the deployment's key taken out of whatever it passes on."""
        key = deployment.target.api_key
        if key and len(key) >= Redactor.MIN_LENGTH:
            stream.translator = _Redacting(stream.translator, self.redact, key.encode())
        return stream

    def _timeout(self, seconds: float, stream: bool, cache: bool = True) -> Timeout:
        """Timeouts of configured values are made once; a request's own value is not kept."""
        timeout = self._timeouts.get((seconds, stream))
        if timeout is None:
            if stream:  # a stream may last long; what must not last is silence
                timeout = Timeout(connect=min(seconds, 30), read=seconds)
            else:
                timeout = Timeout(connect=min(seconds, 30), total=seconds)
            if cache:
                self._timeouts[(seconds, stream)] = timeout
        return timeout


async def _enter(deployment: Deployment, seconds: float) -> asyncio.Semaphore:
    """A place among the deployment's calls in flight, waited for at most `seconds` (the call's
    timeout); none by then: a 429 the router may take to another deployment."""
    gate = deployment.gate
    assert gate is not None
    if not gate.locked():
        await gate.acquire()  # (a free place: taken without waiting)
        return gate
    try:
        await asyncio.wait_for(gate.acquire(), seconds)
    except TimeoutError:
        raise RateLimited(
            f"deployment {deployment.id} of '{deployment.model_name}' had {deployment.max_parallel} calls in flight "
            f"(litellm_params.max_parallel_requests) for {seconds:g} s",
            code="max_parallel_requests",
        ) from None
    return gate


def _check_key(deployment: Deployment) -> None:
    if deployment.missing_key:
        raise Unauthorized(deployment.missing_key, code="missing_provider_key")


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


class _Whole(StreamTranslator):
    def __init__(self, usage: Usage | None) -> None:
        self.usage = usage

    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b""


class _Redacting(StreamTranslator):
    """A stream's translator whose errors have the secrets taken out, and whose output never
    carries the deployment's key (an error event passed through as it came, echoing it). Only
    that key is looked for in the bytes (one `in` per chunk): it is the one secret the provider
    knows. A key split across two chunks is not seen; error events are never split in practice."""

    def __init__(self, inner: StreamTranslator, redact: Redactor, key: bytes) -> None:
        self.inner = inner
        self.redact = redact
        self.key = key

    @property
    def usage(self) -> Usage | None:  # type: ignore[override]
        return self.inner.usage

    def feed(self, data: bytes) -> bytes:
        try:
            out = self.inner.feed(data)
        except GatewayError as exc:
            raise self.redact.error(exc)  # noqa: B904 (the same exception, its text redacted)
        # replace() returns `out` itself when the key is not in it. (`key in out` first cost 1.6k
        # instructions a call more: bytes.__contains__ tries the key as an int, and the TypeError
        # it makes and clears is formatted each time; bench/instructions.py.)
        return out.replace(self.key, REDACTED)

    def close(self) -> bytes:
        try:
            out = self.inner.close()
        except GatewayError as exc:
            raise self.redact.error(exc)  # noqa: B904 (the same exception, its text redacted)
        return out.replace(self.key, REDACTED)


REDACTED = b"[redacted]"
