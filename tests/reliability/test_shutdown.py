"""Items 11 and 12 of issue 13: SIGTERM to a gateway with 2 workers. New connections are refused at
once in every process, the gateway is gone within its grace period, and streams still running
when it ends get their front's error event (one WARNING line each, no traceback) — never a cut."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, Running, deployment
from tests.reliability.raw import connect, read_answer, status_of
from tests.reliability.test_workers import port_of, workers_of

GRACE = 3.0
CHUNK = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,'
    b'"delta":{"content":"tick"},"finish_reason":null}]}\n\n'
)


class EndlessStream:
    """An upstream that answers every request with an SSE stream of one chunk every 0.2 s, forever."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1"
        self.closed = threading.Event()

    def __enter__(self) -> EndlessStream:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            try:
                while not self.closed.is_set():
                    conn.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                    time.sleep(0.2)
            except OSError:
                pass


@pytest.fixture
def upstream() -> Iterator[EndlessStream]:
    with EndlessStream() as server:
        yield server


def start_stream(served: Running) -> socket.socket:
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    raw = orjson.dumps(body)
    sock = connect(served.url)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(raw), raw)
    )
    data = b""
    while b"tick" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    assert status_of(data) == 200, data
    return sock


def refused(port: int) -> bool:
    """Whether a new connection is refused (never accepted and left without an answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"GET /health/liveliness HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            # 3 s, not 1: a probe accepted just before the signal is answered, but on a loaded
            # 2-core machine not always within a second (seen in full runs beside other work)
            answer = read_answer(sock, 3)
    except ConnectionRefusedError:
        return True
    except OSError:  # accepted in the instant the socket closed, then reset: not left hanging either
        return True
    assert answer, "a connection was accepted during shutdown and left without an answer"
    return False


def test_sigterm_with_two_workers(gateway: GatewayFactory, upstream: EndlessStream) -> None:
    served = gateway(
        {"model_list": [deployment("gpt", "openai/gpt-4o", upstream.url)]},
        args=("--workers", "2", "--graceful-timeout", str(GRACE), "--allow-no-auth"),
        master_key=None,
    )
    port = port_of(served)
    workers = workers_of(served.process.pid)
    assert len(workers) == 2
    streams = [start_stream(served) for _ in range(6)]
    answers: list[bytes] = [b""] * len(streams)

    def read(index: int) -> None:
        answers[index] = read_answer(streams[index], limit=GRACE + 5)

    readers = [threading.Thread(target=read, args=(index,)) for index in range(len(streams))]
    for reader in readers:
        reader.start()

    signalled = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    # item 11: new connections are refused at once, by every process, until the end
    while not refused(port):
        assert time.monotonic() - signalled < 0.5, "new connections were still accepted 0.5 s after SIGTERM"
        time.sleep(0.02)
    first_refused = time.monotonic() - signalled
    while time.monotonic() - signalled < GRACE - 1.2:
        assert refused(port), "a new connection was accepted during the drain"
        time.sleep(0.1)
    # the gateway, workers included, is gone within the grace period
    status = served.process.wait(timeout=GRACE + 5)
    exited = time.monotonic() - signalled
    assert status in (0, -signal.SIGTERM), status
    assert exited <= GRACE + 0.25, f"exit took {exited:.2f} s with a grace of {GRACE} s"
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")], "a worker outlived the gateway"
    for reader in readers:
        reader.join(timeout=5)
    # item 12: each stream ended with the error event and the end of the chunked body, not a cut
    for answer in answers:
        assert answer.count(b"tick") >= 5  # it streamed through the drain until the cut
        assert b'"code":"shutting_down"' in answer and b"retry the request" in answer, answer[-400:]
        assert answer.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n"), answer[-200:]
    log = served.output()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log
    assert log.count("ended with an error event: the gateway is shutting down") == len(streams), log
    print(f"first refused after {first_refused:.3f} s, exit after {exited:.2f} s (grace {GRACE} s)")


def test_sigterm_answers_a_request_still_waiting_at_the_end_of_the_grace_with_503(
    gateway: GatewayFactory, upstream: EndlessStream
) -> None:
    """One process; a non-stream request whose upstream never finishes: at the end of the grace
    period it gets a 503 in the OpenAI envelope (retry-after), not a plain-text 500 or a cut."""
    served = gateway(
        {"model_list": [deployment("gpt", "openai/gpt-4o", upstream.url)]},
        args=("--graceful-timeout", "1.5", "--allow-no-auth"),
        master_key=None,
    )
    raw = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}]})
    sock = connect(served.url)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(raw), raw)
    )
    time.sleep(0.3)
    signalled = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    answer = read_answer(sock, limit=5)
    status = served.process.wait(timeout=5)
    exited = time.monotonic() - signalled
    assert status in (0, -signal.SIGTERM), status
    assert exited <= 1.5 + 0.25, f"exit took {exited:.2f} s with a grace of 1.5 s"
    head, _, body = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 503 and b"retry-after: 1" in head, answer
    assert orjson.loads(body)["error"]["code"] == "shutting_down"
    log = served.output()
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log


def test_a_connection_accepted_as_the_signal_came_gets_an_answer(
    gateway: GatewayFactory, upstream: EndlessStream
) -> None:
    """A connection the gateway accepted but whose request it had not read when SIGTERM came is
    answered (503 shutting_down, connection closed), never closed without a word."""
    served = gateway(
        {"model_list": [deployment("gpt", "openai/gpt-4o", upstream.url)]},
        args=("--graceful-timeout", "1.5", "--allow-no-auth"),
        master_key=None,
    )
    sock = connect(served.url)
    time.sleep(0.3)  # accepted by now; nothing sent yet
    served.process.send_signal(signal.SIGTERM)
    answer = read_answer(sock, 5)
    assert status_of(answer) == 503, answer
    assert b'"code":"shutting_down"' in answer and b"retry-after: 1" in answer.lower(), answer
    assert served.process.wait(timeout=5) in (0, -signal.SIGTERM)
