"""The gateway's Transport over HTTP/1.1: one keep-alive pool per upstream origin, and the one place
where the HTTP client's errors are translated.

Foreign errors (the HTTP client's, asyncio's timeouts) become GatewayErrors here and nowhere else.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncGenerator, Iterable

from seance.gateway.errors import (
    BadRequest,
    GatewayBusy,
    GatewayError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from seance.gateway.upstream import Limits, Timeout, UpstreamRequest, UpstreamResponse, http1
from seance.gateway.upstream.http1 import Response

__all__ = ["HTTPTransport", "origin_of", "translate"]

KEEPALIVE_SECONDS = 60.0


def origin_of(url: str) -> str:
    scheme_end = url.find("://") + 3
    path = url.find("/", scheme_end)
    return url if path == -1 else url[:path]


class HTTPTransport:
    """One keep-alive connection pool per upstream origin."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, limits: Limits | None = None) -> None:
        self._pools: dict[str, http1.Pool] = {}
        self._ssl_context = ssl_context  # None: the system's CAs (tests pass their own)
        self.limits = limits or Limits()

    def open(self, origins: Iterable[str]) -> None:
        """Make the pools of the origins known at start (called inside the event loop)."""
        for origin in origins:
            self._pool(origin)

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def connections(self, url: str) -> int:
        """Connections open (or opening) to the origin of `url` (for metrics)."""
        pool = self._pools.get(origin_of(url))
        return pool.opened if pool is not None else 0

    def _pool(self, origin: str) -> http1.Pool:
        pool = self._pools.get(origin)
        if pool is None:
            pool = http1.Pool(origin, None, KEEPALIVE_SECONDS, self._ssl_context, self.limits)
            self._pools[origin] = pool
        return pool

    async def send(self, request: UpstreamRequest, timeout: Timeout, provider: str) -> Response:
        """Send and return the response with its headers read; the caller reads it to the end."""
        if request.delay:
            await asyncio.sleep(request.delay)
        url = request.url
        origin = origin_of(url)
        try:
            pool = self._pools.get(origin) or self._pool(origin)
            return await pool.request(request.method, url[len(origin) :] or "/", request.headers, request.body, timeout)
        except BaseException as exc:
            raise translate(exc, provider) from None

    @staticmethod
    async def read(response: UpstreamResponse, provider: str) -> bytes:
        assert isinstance(response, Response)
        try:
            return await response.read()
        except BaseException as exc:
            raise translate(exc, provider) from None

    @staticmethod
    async def chunks(response: UpstreamResponse, provider: str) -> AsyncGenerator[bytes, None]:
        """The body as it arrives, chunk by chunk; the connection goes back to the pool once the
        answer is complete, or is closed when the iteration stops early (client gone)."""
        assert isinstance(response, Response)
        try:
            while chunk := await response.next_chunk():
                yield chunk
        except BaseException as exc:
            raise translate(exc, provider) from None
        finally:
            response.close()  # a no-op for an answer read to its end


def translate(exc: BaseException, provider: str) -> BaseException:
    """HTTP client/asyncio failures → GatewayError; anything else (cancellation) passes unchanged."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, http1.PoolFull):
        return GatewayBusy(
            f"{provider}: the gateway's limit of {exc.limit} concurrent connections to {exc.origin} is reached and "
            f"none came free within {exc.waited:g} s (--upstream-connections, --upstream-pool-timeout); "
            "the provider was not asked",
            headers={"retry-after": "1"},
        )
    if isinstance(exc, http1.TooLarge):
        return UpstreamTooLarge(f"{provider}: {exc} (--upstream-max-header-bytes, --upstream-max-body-bytes)")
    if isinstance(exc, TimeoutError):
        return UpstreamTimeout(f"{provider}: the provider did not answer in time")
    if isinstance(exc, http1.CannotConnect):
        return UpstreamError(f"{provider}: cannot connect to {exc.host}:{exc.port}: {exc.reason}")
    if isinstance(exc, http1.ConnectionClosed):
        return UpstreamError(f"{provider}: the provider closed the connection before the answer was complete")
    if isinstance(exc, http1.InvalidRequest):  # nothing was sent; another try would not help
        return BadRequest(f"{provider}: the request cannot be sent: {exc}")
    if isinstance(exc, http1.BadResponse | OSError | ValueError):
        return UpstreamError(f"{provider}: request failed: {exc}")
    return exc
