"""Items 4, 5 and 14 of issue 13, against the real gateway process: everything a client sends is
bounded (head size: 431; slow heads and bodies: 408; idle and surplus connections closed), the
liveness probe keeps answering meanwhile, and the parser's own refusals speak JSON."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, Running
from tests.reliability.raw import alive, connect, read_answer, rss_kib, status_of
from tests.wire import ReplayUpstream, Reply

LIMITS = (
    "--max-header-bytes", "16384", "--header-timeout", "1", "--body-timeout", "1", "--body-min-rate", "200",
    "--keepalive-timeout", "1", "--max-connections", "40", "--allow-no-auth",
)  # fmt: skip
CHAT = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture(scope="module")
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(module_gateway: GatewayFactory, upstream: ReplayUpstream) -> Running:
    config = {"model_list": [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o",
                                                                      "api_base": upstream.url + "/v1"}}]}  # fmt: skip
    return module_gateway(config, {"OPENAI_API_KEY": "sk-x"}, args=LIMITS, master_key=None)


def error_of(answer: bytes) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    error = orjson.loads(body)["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    return error


def test_a_header_flood_gets_431_and_memory_stays_flat(served: Running) -> None:
    pid = served.process.pid
    before = rss_kib(pid)
    answers: list[bytes] = []

    def flood() -> None:
        with connect(served.url) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-big: ")
            try:
                for _ in range(64):  # up to 4 MB of one header that never ends
                    sock.sendall(b"a" * 65536)
            except OSError:
                pass  # closed by the gateway
            answers.append(read_answer(sock, 5))

    threads = [threading.Thread(target=flood) for _ in range(10)]
    for thread in threads:
        thread.start()
    assert alive(served.url) < 1.0
    for thread in threads:
        thread.join(20)
    assert len(answers) == 10
    assert all(status_of(a) == 431 for a in answers), [a[:60] for a in answers]
    assert error_of(answers[0])["code"] == "request_header_fields_too_large"
    assert rss_kib(pid) - before < 20_000  # KiB; unbounded, this was 40 MB


def test_a_slow_header_gets_408_while_liveness_answers(served: Running) -> None:
    with connect(served.url) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        sock.settimeout(0.3)
        answer = b""
        while time.monotonic() - started < 5 and not answer:
            try:
                sock.sendall(b"x")
                answer = sock.recv(65536)
            except TimeoutError:
                assert alive(served.url) < 0.5
            except OSError:
                break
        answer += read_answer(sock, 2)
    assert status_of(answer) == 408 and error_of(answer)["code"] == "request_timeout"
    assert 0.9 < time.monotonic() - started < 3


def test_a_slow_body_gets_408(served: Running) -> None:
    with connect(served.url) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(CHAT))
        sock.settimeout(0.3)
        answer = b""
        for byte in CHAT:
            try:
                sock.sendall(bytes([byte]))
                answer = sock.recv(65536)
                break
            except TimeoutError:
                continue
            except OSError:
                break
        answer += read_answer(sock, 2)
    assert status_of(answer) == 408 and b"slower than 200 bytes" in answer
    assert time.monotonic() - started < 4


def test_idle_connections_are_closed(served: Running) -> None:
    started = time.monotonic()
    with connect(served.url) as fresh, connect(served.url) as used:
        used.sendall(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.2)
        assert status_of(used.recv(65536)) == 200
        assert read_answer(fresh, 5) == b""  # closed without a word
        assert read_answer(used, 5) == b""  # the keep-alive timeout
    assert time.monotonic() - started < 3


def test_idle_sockets_beyond_the_cap_cannot_lock_out_a_probe(served: Running) -> None:
    socks = [connect(served.url) for _ in range(80)]  # twice the cap of 40
    try:
        time.sleep(0.2)
        assert alive(served.url) < 0.5
        closed = 0
        for sock in socks:
            sock.settimeout(0.05)
            try:
                closed += sock.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                closed += 1
        assert closed >= 40  # the oldest idle ones made room
    finally:
        for sock in socks:
            sock.close()


def test_busy_connections_beyond_the_cap_get_503(gateway: GatewayFactory) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # an upstream that accepts and never answers
    listener.listen(100)
    base = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    config = {"model_list": [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_base": base}}]}
    served = gateway(
        config, {"OPENAI_API_KEY": "sk-x"}, args=("--max-connections", "5", "--allow-no-auth"), master_key=None
    )
    busy = [connect(served.url) for _ in range(5)]
    try:
        for sock in busy:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(CHAT), CHAT)
            )
        time.sleep(0.3)
        with connect(served.url) as extra:
            answer = read_answer(extra, 3)
        assert status_of(answer) == 503 and b"retry-after: 1" in answer
        assert b"limit of 5 connections" in answer
    finally:
        for sock in busy:
            sock.close()
        listener.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n",
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}",
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
        b"GET /health HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n",
    ],
)
def test_parser_refusals_answer_in_the_openai_envelope(served: Running, request_bytes: bytes) -> None:
    with connect(served.url) as sock:
        sock.sendall(request_bytes)
        answer = read_answer(sock, 3)
    assert status_of(answer) == 400
    assert error_of(answer)["type"] == "invalid_request_error"


def test_an_http_1_0_client_gets_a_stream_without_chunked_encoding(served: Running, upstream: ReplayUpstream) -> None:
    events = [b'data: {"id":"1","object":"chat.completion.chunk","choices":[]}\n\n', b"data: [DONE]\n\n"]
    upstream.add("/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, chunks=events))
    body = orjson.dumps({**orjson.loads(CHAT), "stream": True})
    with connect(served.url) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.0\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        answer = read_answer(sock, 5)
    head, _, content = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 200 and b"transfer-encoding" not in head.lower()
    assert content == b"".join(events)


def test_the_request_id_is_echoed_byte_for_byte(served: Running) -> None:
    request_id = b"req-\xe9\xff " + b"7" * 300
    with connect(served.url) as sock:
        sock.sendall(
            b"GET /v1/models HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-request-id: %s\r\n\r\n" % request_id
        )
        head = read_answer(sock, 3).partition(b"\r\n\r\n")[0]
    assert b"\r\nx-request-id: " + request_id + b"\r\n" in head
