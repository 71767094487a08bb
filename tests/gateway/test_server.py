"""Serving: several worker processes, and SIGTERM draining in-flight streams before exit."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator

import openai
import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, deployment
from tests.wire import ReplayUpstream, Reply, load

STREAM = load("openai/chat-stream-include-usage.httprr.txt")[0]


@pytest.fixture
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as server:
        yield server


def test_sigterm_lets_an_in_flight_stream_finish(gateway: GatewayFactory, upstream: ReplayUpstream) -> None:
    served = gateway({"model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")]})
    events = [line + b"\n\n" for line in STREAM.response_body.split(b"\n\n") if line.strip()]
    upstream.add("/v1/chat/completions", Reply(200, {"content-type": "text/event-stream"}, chunks=events,
                                               chunk_delay=0.1))  # fmt: skip
    received: list[str] = []

    def consume() -> None:
        for chunk in served.openai().chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "Count from 1 to 5"}], stream=True,
            stream_options={"include_usage": True},
        ):  # fmt: skip
            received.append(chunk.id)

    reader = threading.Thread(target=consume)
    reader.start()
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    served.process.send_signal(signal.SIGTERM)
    reader.join(timeout=30)
    assert len(received) == len(events) - 1  # every chunk but [DONE] arrived
    # uvicorn re-raises the captured SIGTERM once drained, as supervisors expect
    assert served.process.wait(timeout=30) in (0, -signal.SIGTERM)


def test_several_workers_serve(gateway: GatewayFactory, upstream: ReplayUpstream) -> None:
    served = gateway(
        {"model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")]}, args=("--workers", "2")
    )
    chat = load("openai/chat-nonstream.httprr.txt")[0]
    for _ in range(6):
        upstream.add("/v1/chat/completions", chat)
    with served.http() as http:
        for _ in range(6):
            body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
            assert http.post("/v1/chat/completions", content=orjson.dumps(body)).status_code == 200
    assert served.stop() in (0, -signal.SIGTERM)


def test_a_client_that_disconnects_cancels_its_upstream_request(gateway: GatewayFactory) -> None:
    """The upstream here accepts, reads the request, never answers, and reports when the gateway
    closes the connection: that must happen soon after the client gives up."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    closed = threading.Event()

    def upstream() -> None:
        conn, _ = listener.accept()
        conn.settimeout(20)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        closed.set()
        conn.close()

    thread = threading.Thread(target=upstream, daemon=True)
    thread.start()
    served = gateway({"model_list": [deployment("gpt", "openai/gpt-3.5-turbo", f"http://127.0.0.1:{port}/v1")]})
    client = served.openai(timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    assert closed.wait(timeout=5), "the gateway kept waiting on the upstream after the client left"
    listener.close()


def test_a_stream_ended_by_an_error_event_releases_its_upstream_connection(gateway: GatewayFactory) -> None:
    """The upstream sends an error event and then holds the connection open: the gateway must end
    the client's stream with the error and close that connection, not leave it to linger."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    closed = threading.Event()
    event = b'data: {"error": {"message": "tool_use_failed", "type": "invalid_request_error"}}\n\n'

    def upstream() -> None:
        conn, _ = listener.accept()
        conn.settimeout(20)
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        conn.sendall(head + f"{len(event):x}\r\n".encode() + event + b"\r\n")
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        closed.set()
        conn.close()

    threading.Thread(target=upstream, daemon=True).start()
    served = gateway({"model_list": [deployment("gpt", "openai/gpt-3.5-turbo", f"http://127.0.0.1:{port}/v1")]})
    with pytest.raises(openai.APIError, match="tool_use_failed"):
        for _ in served.openai(timeout=10).chat.completions.create(
            model="gpt", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            pass
    assert closed.wait(timeout=5), "the upstream connection stayed open after the stream ended"
    listener.close()
