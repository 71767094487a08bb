"""The one place the gateway talks HTTP to providers: keep-alive pools and error translation.

Foreign errors (aiohttp's, asyncio's timeouts) become GatewayErrors here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

import aiohttp

from seance.gateway.errors import GatewayError, UpstreamError, UpstreamTimeout
from seance.gateway.providers.base import UpstreamRequest

POOL_PER_ORIGIN = 512
KEEPALIVE_SECONDS = 60.0
CHUNK_LIMIT = 2**16


def origin_of(url: str) -> str:
    scheme_end = url.find("://") + 3
    path = url.find("/", scheme_end)
    return url if path == -1 else url[:path]


class Upstreams:
    """One aiohttp session, hence one keep-alive connection pool, per upstream origin."""

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def open(self, origins: Iterable[str]) -> None:
        """Make the pools of the origins known at start (called inside the event loop)."""
        for origin in origins:
            self._session(origin)

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    def _session(self, origin: str) -> aiohttp.ClientSession:
        session = self._sessions.get(origin)
        if session is None:
            connector = aiohttp.TCPConnector(
                limit=POOL_PER_ORIGIN, limit_per_host=POOL_PER_ORIGIN, keepalive_timeout=KEEPALIVE_SECONDS
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                read_bufsize=CHUNK_LIMIT,
            )
            self._sessions[origin] = session
        return session

    async def send(
        self, request: UpstreamRequest, timeout: aiohttp.ClientTimeout, provider: str
    ) -> aiohttp.ClientResponse:
        """Send and return the response with its headers read; the caller reads and releases it."""
        if request.delay:
            await asyncio.sleep(request.delay)
        session = self._session(origin_of(request.url))
        try:
            return await session.request(
                request.method, request.url, headers=request.headers, data=request.body, timeout=timeout
            )
        except BaseException as exc:
            raise translate(exc, provider) from None

    @staticmethod
    async def read(response: aiohttp.ClientResponse, provider: str) -> bytes:
        try:
            return await response.read()
        except BaseException as exc:
            raise translate(exc, provider) from None
        finally:
            response.release()

    @staticmethod
    async def chunks(response: aiohttp.ClientResponse, provider: str) -> AsyncIterator[bytes]:
        """The body as it arrives, chunk by chunk; the connection goes back to the pool at the end,
        or is closed when the iteration stops early (client gone)."""
        complete = False
        try:
            async for chunk in response.content.iter_any():
                yield chunk
            complete = True
        except BaseException as exc:
            raise translate(exc, provider) from None
        finally:
            if complete:
                response.release()
            else:
                response.close()


def translate(exc: BaseException, provider: str) -> BaseException:
    """aiohttp/asyncio failures → GatewayError; anything else (cancellation) passes unchanged."""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"{provider}: the provider did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"{provider}: cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return UpstreamError(f"{provider}: the provider closed the connection before the answer was complete")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return UpstreamError(f"{provider}: request failed: {type(exc).__name__}")
    return exc
