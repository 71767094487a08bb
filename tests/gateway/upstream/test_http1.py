"""The gateway's HTTP/1.1 client against loopback servers that answer byte by byte as each test
says, so that framing, keep-alive, retries, timeouts and cancellation are all observable."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import hashlib
import ipaddress
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from seance.gateway.upstream import Limits
from seance.gateway.upstream.http1 import BadResponse, CannotConnect, ConnectionClosed, Pool, PoolFull, Timeout
from seance.gateway.upstream.http1_response import BUFFER_LIMIT, FRAMING, Deadlines
from seance.gateway.upstream.rate_limits import RATE_LIMIT_LENGTHS

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
T = Timeout(connect=2, total=5)


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # a client connection ended


async def read_request(reader: asyncio.StreamReader, server: Server) -> bytes:
    """One request (head and content-length body); b"" when the client closed instead."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return b""
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    request = head + await reader.readexactly(length)
    server.requests.append(request)
    return request


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@asynccontextmanager
async def serve(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter, Server], Awaitable[None]],
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Server]:
    state = Server(port=0)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            await handler(reader, writer, state)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            state.closed.set()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0, ssl=ssl_context)
    state.port = server.sockets[0].getsockname()[1]
    async with server:
        yield state


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    """Answers every request on the connection with its own number, keeping the connection."""
    while await read_request(reader, server):
        writer.write(answer(b"answer %d" % len(server.requests)))
        await writer.drain()


def origin(server: Server, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{server.port}"


async def get(pool: Pool, timeout: Timeout = T, body: bytes | None = None) -> bytes:
    response = await pool.request("POST" if body else "GET", "/v1/x?y=1", {"x-key": "k"}, body, timeout)
    return await response.read()


async def test_an_answers_rate_limit_headers_are_found_under_openais_names() -> None:
    """What providers send (tests/fixtures/wire: OpenAI's, Anthropic's, Mistral's), in any case,
    each OpenAI name once (the first); a value that is not a plain count or duration is not kept
    (it would go into the head the client is sent; the parser already refuses control bytes); an
    answer without any has none."""
    headers = (
        "X-Ratelimit-Limit-Requests: 10000",
        "x-ratelimit-reset-tokens: 0s",
        "Anthropic-Ratelimit-Tokens-Remaining: 12",
        "anthropic-ratelimit-requests-reset: 2026-08-19T14:34:11Z",
        "X-Ratelimit-Remaining-Req-Minute: 99",
        "x-ratelimit-remaining-requests: 98",
        "x-ratelimit-limit-tokens: 5 <script>",
        "x-ratelimit-tokens-query-cost: 32",
        "x-request-id: req_1",
    )

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while await read_request(reader, server):
            writer.write(answer(b"ok", *headers) if len(server.requests) == 1 else answer(b"ok"))
            await writer.drain()

    async with serve(handler) as server:
        pool = Pool(origin(server))
        first = await pool.request("GET", "/", {}, None, T)
        await first.read()
        assert first.rate_limits == [
            (b"x-ratelimit-limit-requests", b"10000"), (b"x-ratelimit-reset-tokens", b"0s"),
            (b"x-ratelimit-remaining-tokens", b"12"), (b"x-ratelimit-reset-requests", b"0s"),  # (a past time)
            (b"x-ratelimit-remaining-requests", b"99"),
        ]  # fmt: skip
        second = await pool.request("GET", "/", {}, None, T)
        await second.read()
        assert second.rate_limits == ()
        pool.close()
    # headers_done tells the two kinds of names it looks at apart by their lengths alone
    assert not set(map(len, FRAMING)) & RATE_LIMIT_LENGTHS


async def test_request_is_one_well_formed_message_and_content_length_body_is_read() -> None:
    async with serve(keep_alive) as server:
        pool = Pool(origin(server))
        response = await pool.request("POST", "/v1/chat?a=b", {"Authorization": "Bearer k"}, b'{"a":1}', T)
        assert (response.status, await response.read()) == (200, b"answer 1")
        assert response.headers["content-length"] == "8"
        head, _, body = server.requests[0].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /v1/chat?a=b HTTP/1.1"
        assert b"host: 127.0.0.1:%d" % server.port in lines
        assert {b"content-length: 7", b"accept-encoding: identity", b"Authorization: Bearer k"} <= set(lines)
        assert body == b'{"a":1}'
        sock = pool.idle[0].transport.get_extra_info("socket")  # type: ignore[union-attr]
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # small writes leave at once
        pool.close()


async def test_connections_are_kept_alive_and_reused() -> None:
    async with serve(keep_alive) as server:
        pool = Pool(origin(server))
        assert [await get(pool) for _ in range(5)] == [b"answer %d" % n for n in range(1, 6)]
        assert server.connections == 1
        await asyncio.gather(*(get(pool) for _ in range(3)))
        assert server.connections == 3  # one busy connection per request in flight
        await asyncio.gather(*(get(pool) for _ in range(3)))
        assert server.connections == 3
        pool.close()


async def test_requests_wait_for_a_connection_when_the_pool_is_full() -> None:
    async with serve(keep_alive) as server:
        pool = Pool(origin(server), limit=2)
        bodies = await asyncio.gather(*(get(pool) for _ in range(10)))
        assert sorted(bodies) == sorted(b"answer %d" % n for n in range(1, 11))
        assert server.connections == 2
        pool.close()


async def test_waiting_for_a_free_connection_has_its_own_bound() -> None:
    """The wait for a pool slot is the gateway's limit, not the provider's slowness: its own
    timeout, its own error (PoolFull, a 503 naming the limit), whatever the connect timeout."""

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        await asyncio.sleep(1)
        writer.write(answer(b"late"))

    async with serve(slow) as server:
        pool = Pool(origin(server), limit=1, limits=Limits(pool_timeout=0.1))
        first = asyncio.ensure_future(get(pool))
        await asyncio.sleep(0.05)
        with pytest.raises(PoolFull, match=r"all 1 connections to http://127\.0\.0\.1:"):
            await get(pool, Timeout(connect=5, total=5))
        assert await first == b"late"
        pool.close()


async def test_chunked_body() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        await keep_alive(reader, writer, server)

    async with serve(chunked) as server:
        pool = Pool(origin(server))
        assert await get(pool) == b"hello world"
        assert await get(pool) == b"answer 2"  # the connection was fit for reuse after the last chunk
        assert server.connections == 1
        pool.close()


async def test_body_delimited_by_close_and_connection_close_are_not_reused() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        if len(server.requests) == 1:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it, ")
            await asyncio.sleep(0.05)
            writer.write(b"until the end")
        else:
            writer.write(answer(b"bye", "connection: close"))

    async with serve(until_close) as server:
        pool = Pool(origin(server))
        assert await get(pool) == b"all of it, until the end"
        assert await get(pool) == b"bye"
        await asyncio.sleep(0.05)
        assert server.connections == 2 and pool.opened == 0 and not pool.idle
        pool.close()


async def test_a_stale_pooled_connection_is_retried_once_on_a_new_one() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(answer(b"first on %d" % server.connections))
        await writer.drain()
        await read_request(reader, server)  # the keep-alive race: it closes as the next one comes in

    async with serve(once) as server:
        pool = Pool(origin(server))
        assert await get(pool) == b"first on 1"
        assert await get(pool, body=b"x") == b"first on 2"
        assert server.connections == 2 and len(server.requests) == 3
        pool.close()


async def test_a_new_connection_closed_before_an_answer_is_not_retried() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)

    async with serve(hang_up) as server:
        pool = Pool(origin(server))
        with pytest.raises(ConnectionClosed):
            await get(pool)
        assert server.connections == 1
        pool.close()


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = Pool(f"http://127.0.0.1:{port}")
    with pytest.raises(CannotConnect, match=f"cannot connect to 127.0.0.1:{port}: ") as caught:
        await get(pool)
    assert caught.value.port == port and pool.opened == 0
    pool.close()


async def test_total_timeout_closes_the_connection() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        await reader.read()  # until the client closes

    async with serve(silent) as server:
        pool = Pool(origin(server))
        with pytest.raises(TimeoutError):
            await get(pool, Timeout(connect=1, total=0.2))
        await asyncio.wait_for(server.closed.wait(), 2)
        pool.close()


async def test_total_timeout_covers_a_slow_body() -> None:
    async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        for _ in range(100):
            writer.write(b".")
            await asyncio.sleep(0.02)

    async with serve(dribble) as server:
        pool = Pool(origin(server))
        response = await pool.request("GET", "/", {}, None, Timeout(connect=1, total=0.3))
        with pytest.raises(TimeoutError):
            await response.read()
        pool.close()


async def test_read_timeout_is_the_longest_silence_not_the_whole_stream() -> None:
    async def paced(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(8):  # 0.4 s in all, never silent 0.2 s
            writer.write(b"1\r\n.\r\n")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # then silent
        writer.write(b"0\r\n\r\n")

    async with serve(paced) as server:
        pool = Pool(origin(server))
        response = await pool.request("GET", "/", {}, None, Timeout(connect=1, read=0.2))
        received = b""
        with pytest.raises(TimeoutError):
            async for chunk in response.chunks():
                received += chunk
        assert received == b"." * 8
        pool.close()


async def test_reset_mid_body_is_an_error() -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npart of it")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST

    async with serve(reset) as server:
        pool = Pool(origin(server))
        with pytest.raises(ConnectionClosed, match="before the answer was complete"):
            await get(pool)
        pool.close()


async def test_garbage_is_a_bad_response() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"SMTP ready\r\n\r\n")
        await reader.read()

    async with serve(garbage) as server:
        pool = Pool(origin(server))
        with pytest.raises(BadResponse):
            await get(pool)
        pool.close()


async def test_bytes_after_a_complete_answer_fail_it_and_the_connection() -> None:
    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        if server.connections == 1:
            await read_request(reader, server)
            writer.write(answer(b"one") + b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nextra")
        await keep_alive(reader, writer, server)

    async with serve(chatty) as server:
        pool = Pool(origin(server))
        with pytest.raises(BadResponse):  # a body longer than its Content-Length is not an answer
            await get(pool)
        await asyncio.sleep(0.05)
        assert await get(pool) == b"answer 2"
        assert server.connections == 2
        pool.close()


async def test_stream_chunks_arrive_as_sent() -> None:
    got_first = asyncio.Event()

    async def two_parts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst \r\n")
        await got_first.wait()  # the second part only once the client has the first
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")

    async with serve(two_parts) as server:
        pool = Pool(origin(server))
        response = await pool.request("GET", "/", {}, None, Timeout(connect=1, read=2))
        parts = []
        async for chunk in response.chunks():
            parts.append(chunk)
            got_first.set()
        assert parts == [b"first ", b"second"]
        pool.close()


BIG = bytes(range(256)) * (4 * 2**20 // 256)  # an answer larger than what the reader buffers


async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
    await read_request(reader, server)
    writer.write(answer(BIG))
    await writer.drain()


async def test_a_big_stream_is_paused_while_the_reader_is_behind() -> None:
    async with serve(big) as server:
        pool = Pool(origin(server))
        response = await pool.request("GET", "/", {}, None, Timeout(connect=1, read=5))
        digest = hashlib.sha256()
        digest.update(await response.next_chunk())
        await asyncio.sleep(0.3)  # a slow client: the server keeps writing meanwhile
        assert response._buffered <= BUFFER_LIMIT + 2**18  # what backpressure bounds
        while chunk := await response.next_chunk():
            digest.update(chunk)
        assert digest.digest() == hashlib.sha256(BIG).digest()
        pool.close()


async def test_a_reader_behind_for_longer_than_the_read_timeout_is_not_timed_out() -> None:
    """The server is silent because the gateway stopped reading (its client is slow), not because
    it is stuck: the read timeout waits for the reader."""
    async with serve(big) as server:
        pool = Pool(origin(server))
        response = await pool.request("GET", "/", {}, None, Timeout(connect=1, read=0.2))
        received = await response.next_chunk()
        await asyncio.sleep(0.6)  # three read timeouts' worth, paused
        while chunk := await response.next_chunk():
            received += chunk
        assert received == BIG
        pool.close()


async def test_the_timeouts_timer_runs_only_while_an_answer_is_in_flight() -> None:
    async with serve(keep_alive) as server:
        pool = Pool(origin(server))
        response = await pool.request("GET", "/", {}, None, T)
        assert pool.deadlines._timer is not None  # armed by the request
        assert await response.read() == b"answer 1"
        assert not pool.deadlines.responses
        await asyncio.sleep(4 * Deadlines.TICK)
        assert pool.deadlines._timer is None  # no wake-ups on an idle gateway
        pool.close()


async def test_gzip_is_decoded_whole_and_streamed() -> None:
    text = b"the same words again and again " * 1000
    packed = gzip.compress(text)

    async def gzipped(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        writer.write(answer(packed, "content-encoding: gzip"))
        await read_request(reader, server)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: deflate\r\ntransfer-encoding: chunked\r\n\r\n")
        deflated = zlib.compress(text)
        for start in range(0, len(deflated), 100):
            piece = deflated[start : start + 100]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    async with serve(gzipped) as server:
        pool = Pool(origin(server))
        response = await pool.request("GET", "/", {}, None, T)
        assert "content-encoding" not in response.headers
        assert await response.read() == text
        response = await pool.request("GET", "/", {}, None, Timeout(connect=1, read=2))
        assert b"".join([chunk async for chunk in response.chunks()]) == text
        pool.close()


async def test_cancelling_closes_the_connection_while_waiting_and_mid_body() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        await read_request(reader, server)
        if server.connections == 2:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
        await reader.read()

    async with serve(half) as server:
        pool = Pool(origin(server))
        waiting = asyncio.ensure_future(get(pool))
        await asyncio.sleep(0.1)
        waiting.cancel()
        await asyncio.wait_for(server.closed.wait(), 2)
        server.closed.clear()
        reading = asyncio.ensure_future(get(pool))
        await asyncio.sleep(0.1)
        reading.cancel()
        await asyncio.wait_for(server.closed.wait(), 2)
        await asyncio.sleep(0.01)
        assert pool.opened == 0 and not pool.idle
        pool.close()


async def test_idle_connections_expire() -> None:
    async with serve(keep_alive) as server:
        pool = Pool(origin(server), keepalive=0.1)
        await get(pool)
        await asyncio.wait_for(server.closed.wait(), 2)  # swept without any further request
        await get(pool)
        assert server.connections == 2
        pool.close()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seance test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


async def test_https_verifies_the_server_certificate(tmp_path: Path) -> None:
    cert_file, key_file = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    async with serve(keep_alive, server_context) as server:
        pool = Pool(origin(server, "https"), ssl_context=ssl.create_default_context(cafile=str(cert_file)))
        assert [await get(pool), await get(pool)] == [b"answer 1", b"answer 2"]
        assert server.connections == 1
        pool.close()
        untrusting = Pool(origin(server, "https"))  # the system's CAs do not know this certificate
        with pytest.raises(CannotConnect, match="certificate"):
            await get(untrusting)
        untrusting.close()


def test_works_under_uvloop() -> None:
    async def main() -> list[bytes]:
        async with serve(keep_alive) as server:
            pool = Pool(origin(server))
            bodies = [await get(pool, body=b"x") for _ in range(3)]
            response = await pool.request("GET", "/", {}, None, Timeout(connect=1, read=1))
            bodies.append(b"".join([chunk async for chunk in response.chunks()]))
            assert server.connections == 1
            sock = pool.idle[0].transport.get_extra_info("socket")  # type: ignore[union-attr]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            pool.close()
            return bodies

    assert uvloop.run(main()) == [b"answer 1", b"answer 2", b"answer 3", b"answer 4"]


def test_an_origin_must_be_http_or_https() -> None:
    for bad in ("ftp://host", "http://", "http://host/path"):
        with pytest.raises(ValueError, match="not an http"):
            Pool(bad)
    assert (Pool("https://api.example.com").port, Pool("http://h:8080").port) == (443, 8080)
