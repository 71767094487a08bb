"""HTTPTransport: requests go out through one pool per origin, and every failure of the HTTP client
comes back as the GatewayError the proxy retries, fails over or shows to the client."""

from __future__ import annotations

import asyncio
import socket

import pytest

from seance.gateway.errors import UpstreamError, UpstreamTimeout
from seance.gateway.providers.base import UpstreamRequest
from seance.gateway.upstream import Timeout
from seance.gateway.upstream.transport import HTTPTransport as HTTPTransport
from seance.gateway.upstream.transport import origin_of, translate

TIMEOUT = Timeout(connect=1, total=2)


async def start(answers: list[bytes]) -> tuple[asyncio.Server, int, list[bytes]]:
    """A server that reads one request per answer, in order, on each connection; an empty answer
    means none: it waits for the client to leave."""
    seen: list[bytes] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for reply in answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.startswith(b"content-length")),
                    0,
                )
                seen.append(head + await reader.readexactly(length))
                if not reply:
                    await reader.read()
                writer.write(reply)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], seen


def test_origin_of() -> None:
    assert origin_of("https://api.openai.com/v1/chat/completions?x=1") == "https://api.openai.com"
    assert origin_of("http://127.0.0.1:8080") == "http://127.0.0.1:8080"


async def test_send_read_and_stream_through_one_pool_per_origin() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    stream = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"
    server, port, seen = await start([ok, stream])
    upstreams = HTTPTransport()
    upstreams.open([f"http://127.0.0.1:{port}"])
    url = f"http://127.0.0.1:{port}/v1/chat/completions?q=1"
    request = UpstreamRequest("POST", url, {"authorization": "Bearer k"}, b"{}")
    response = await upstreams.send(request, TIMEOUT, "openai")
    assert (response.status, await HTTPTransport.read(response, "openai")) == (200, b"ok")
    response = await upstreams.send(request, Timeout(connect=1, read=2), "openai")
    assert b"".join([c async for c in HTTPTransport.chunks(response, "openai")]) == b"abcdef"
    assert len(seen) == 2 and seen[0].startswith(b"POST /v1/chat/completions?q=1 HTTP/1.1\r\n")
    await upstreams.close()
    server.close()


async def test_error_answers_keep_their_status_and_retry_after() -> None:
    limited = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\ncontent-length: 2\r\n\r\n{}"
    server, port, _ = await start([limited])
    upstreams = HTTPTransport()
    response = await upstreams.send(UpstreamRequest("GET", f"http://127.0.0.1:{port}/", {}), TIMEOUT, "p")
    assert response.status == 429 and response.headers["retry-after"] == "7"
    assert await HTTPTransport.read(response, "p") == b"{}"
    await upstreams.close()
    server.close()


async def test_connection_refused_is_an_upstream_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    upstreams = HTTPTransport()
    with pytest.raises(UpstreamError, match=f"openai: cannot connect to 127.0.0.1:{port}: "):
        await upstreams.send(UpstreamRequest("GET", f"http://127.0.0.1:{port}/v1", {}), TIMEOUT, "openai")
    await upstreams.close()


async def test_silence_is_an_upstream_timeout() -> None:
    server, port, _ = await start([b""])  # reads the request, never answers
    upstreams = HTTPTransport()
    request = UpstreamRequest("GET", f"http://127.0.0.1:{port}/", {})
    with pytest.raises(UpstreamTimeout, match="did not answer in time"):
        await upstreams.send(request, Timeout(connect=1, total=0.2), "groq")
    await upstreams.close()
    server.close()


async def test_a_truncated_stream_is_an_upstream_error() -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\ndata: {}\n\n"
    server, port, _ = await start([cut])  # then closes
    upstreams = HTTPTransport()
    response = await upstreams.send(UpstreamRequest("GET", f"http://127.0.0.1:{port}/", {}), TIMEOUT, "groq")
    received = []
    with pytest.raises(UpstreamError, match="closed the connection before the answer was complete"):
        async for chunk in HTTPTransport.chunks(response, "groq"):
            received.append(chunk)
    assert received == [b"data: {}\n\n"]
    await upstreams.close()
    server.close()


def test_translate_passes_cancellation_through() -> None:
    cancelled = asyncio.CancelledError()
    assert translate(cancelled, "p") is cancelled
    assert isinstance(translate(ValueError("header 'x' has a line break"), "p"), UpstreamError)
