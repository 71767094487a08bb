"""How the gateway reaches providers: the upstream request type, timeouts, and the transport protocol
that sends one. Adapters build `UpstreamRequest`s and never see a transport; the router sends them
through a `Transport` (the pooled HTTP/1.1 one in `transport.py`, or `mock.MockTransport` in tests).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(slots=True, unsafe_hash=True)  # never changed, but not frozen: see formats/openai.py Usage
class UpstreamRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    stream: bool = False  # read the answer incrementally through adapter.stream()
    delay: float = 0.0  # seconds to wait before sending (polling)


@dataclass(frozen=True, slots=True)
class Timeout:
    connect: float  # getting a connection: waiting for a pool slot, TCP and TLS handshakes
    total: float | None = None  # the whole request, answer included (non-streamed answers)
    read: float | None = None  # the longest silence while an answer is awaited (streams)


@dataclass(frozen=True, slots=True)
class Limits:
    """What the gateway accepts from upstreams, and how many connections it opens to one."""

    per_origin: int = 2048  # connections to one origin (scheme://host:port), streams included
    pool_timeout: float = 10.0  # the longest wait for one of them, apart from the provider's time
    max_header_bytes: int = 64 * 1024  # an answer's status line and headers
    max_body_bytes: int = 128 * 2**20  # a non-streamed answer, decoded (streams: any length)


class UpstreamResponse(Protocol):
    """An answer whose status and headers have arrived; the body is read through the transport."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Names in lower case."""

    @property
    def rate_limits(self) -> Sequence[tuple[bytes, bytes]]:
        """What the provider's rate limits have left, as the answer says, under OpenAI's header
        names (`rate_limits.rate_limits_of`): sent on to a caller without limits of its own (fronts/__init__)."""


class Transport(Protocol):
    """The narrow seam between the router and the network. Every failure comes out of it as a
    GatewayError (UpstreamError, UpstreamTimeout); cancellation passes through unchanged."""

    def open(self, origins: Iterable[str]) -> None:
        """Prepare for the upstream origins known at start (called inside the event loop)."""

    async def close(self) -> None: ...

    async def send(self, request: UpstreamRequest, timeout: Timeout, provider: str) -> UpstreamResponse:
        """Send and return once the status and headers are in; the caller then reads the body."""

    async def read(self, response: UpstreamResponse, provider: str) -> bytes:
        """The whole body."""

    def chunks(self, response: UpstreamResponse, provider: str) -> AsyncGenerator[bytes, None]:
        """The body as it arrives; stopping early abandons (closes) the answer."""


def public_url(url: str) -> str:
    """A URL as it may be shown or logged: without user:password and without its query (where
    some providers take a key)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    if parts.username is None and parts.password is None and not parts.query:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path}" + ("?…" if parts.query else "")
