"""Serving: several worker processes, and SIGTERM draining in-flight streams before exit."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

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
