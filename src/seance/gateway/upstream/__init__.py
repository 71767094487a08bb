"""How the gateway reaches providers: the upstream request type, timeouts, and the transport protocol
that sends one. Adapters build `UpstreamRequest`s and never see a transport; the router sends them
through a `Transport` (the pooled HTTP/1.1 one in `transport.py`, or `mock.MockTransport` in tests).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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
        names (`rate_limits_of`): sent on to a caller without limits of its own (fronts/__init__)."""


# A provider's rate-limit headers -> OpenAI's names for them, which the gateway's answers carry
# (LiteLLM's proxy does the same): OpenAI's own (and Groq's, Together's, Azure's…), Anthropic's,
# and Mistral's per-minute ones, as the recordings in tests/fixtures/wire show them. Anthropic's
# resets are times (RFC 3339), OpenAI's durations ("6m0s"): RESET_TIMES are made durations.
RATE_LIMIT_NAMES = {
    **{name: name for name in (
        b"x-ratelimit-limit-requests", b"x-ratelimit-limit-tokens", b"x-ratelimit-remaining-requests",
        b"x-ratelimit-remaining-tokens", b"x-ratelimit-reset-requests", b"x-ratelimit-reset-tokens",
    )},
    b"anthropic-ratelimit-requests-limit": b"x-ratelimit-limit-requests",
    b"anthropic-ratelimit-requests-remaining": b"x-ratelimit-remaining-requests",
    b"anthropic-ratelimit-tokens-limit": b"x-ratelimit-limit-tokens",
    b"anthropic-ratelimit-tokens-remaining": b"x-ratelimit-remaining-tokens",
    b"anthropic-ratelimit-requests-reset": b"x-ratelimit-reset-requests",
    b"anthropic-ratelimit-tokens-reset": b"x-ratelimit-reset-tokens",
    b"x-ratelimit-limit-req-minute": b"x-ratelimit-limit-requests",
    b"x-ratelimit-remaining-req-minute": b"x-ratelimit-remaining-requests",
    b"x-ratelimit-limit-tokens-minute": b"x-ratelimit-limit-tokens",
    b"x-ratelimit-remaining-tokens-minute": b"x-ratelimit-remaining-tokens",
}  # fmt: skip
RATE_LIMIT_LENGTHS = frozenset(map(len, RATE_LIMIT_NAMES))  # a name of another length is none of them
RESET_TIMES = frozenset({b"anthropic-ratelimit-requests-reset", b"anthropic-ratelimit-tokens-reset"})
_RATE_LIMIT_VALUE = re.compile(rb"[0-9A-Za-z.]{1,40}")  # a count or a duration ("6m0s"): nothing else is sent on


def rate_limits_of(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The rate-limit headers among an answer's (any case), under OpenAI's names, in their order,
    each name once (the first); a value that is not a plain count or duration is left out (it goes
    into the head the client is sent)."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if len(name) in RATE_LIMIT_LENGTHS:
            lowered = name.lower()
            standard = RATE_LIMIT_NAMES.get(lowered)
            if standard is None or standard in found:
                continue
            value = value.strip()
            if lowered in RESET_TIMES:
                value = _until(value)
            if _RATE_LIMIT_VALUE.fullmatch(value):
                found[standard] = value
    return list(found.items())


def _until(when: bytes) -> bytes:
    """An RFC 3339 time as OpenAI's reset durations say it, from now: b"0s", b"250ms", b"1m12s";
    b"" (not sent) when it is not a time."""
    try:
        at = datetime.fromisoformat(when.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return b""
    if at.tzinfo is None:
        return b""
    millis = max(0, round((at.timestamp() - time.time()) * 1000))
    if millis < 1000:
        return b"%dms" % millis if millis else b"0s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = (b"%.3f" % (rest / 1000)).rstrip(b"0").rstrip(b".")
    return (b"%dh" % hours if hours else b"") + (b"%dm" % minutes if hours or minutes else b"") + seconds + b"s"


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
