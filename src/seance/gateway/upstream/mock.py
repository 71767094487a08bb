"""A Transport without sockets, for unit tests of routing and hooks: each request is answered by a
function of the request (a MockResponse, or an exception to raise as the network would), and every
request is recorded."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from seance.gateway.upstream import Timeout, UpstreamRequest, UpstreamResponse
from seance.gateway.upstream.rate_limits import rate_limits_of


@dataclass
class MockResponse:
    status: int = 200
    body: bytes | list[bytes] = b"{}"  # a list: the chunks of a streamed answer, in order
    headers: Mapping[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    # raised after the chunks: a stream cut short
    error_after: BaseException | None = None

    @property
    def rate_limits(self) -> list[tuple[bytes, bytes]]:
        return rate_limits_of((name.encode(), value.encode()) for name, value in self.headers.items())


Handler = Callable[[UpstreamRequest], MockResponse | BaseException]


class MockTransport:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[UpstreamRequest] = []
        self.timeouts: list[Timeout] = []
        self.opened: set[str] = set()
        self.closed = False

    def open(self, origins: Iterable[str]) -> None:
        self.opened.update(origins)

    async def close(self) -> None:
        self.closed = True

    async def send(self, request: UpstreamRequest, timeout: Timeout, provider: str) -> UpstreamResponse:
        self.requests.append(request)
        self.timeouts.append(timeout)
        answer = self.handler(request)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def read(self, response: UpstreamResponse, provider: str) -> bytes:
        assert isinstance(response, MockResponse)
        body = response.body
        return b"".join(body) if isinstance(body, list) else body

    async def chunks(self, response: UpstreamResponse, provider: str) -> AsyncGenerator[bytes, None]:
        assert isinstance(response, MockResponse)
        body = response.body
        for chunk in body if isinstance(body, list) else [body]:
            yield chunk
        if response.error_after is not None:
            raise response.error_after
