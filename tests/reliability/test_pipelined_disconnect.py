"""A client that disconnects during a stream with another request pipelined behind it: the stream
stops quietly (uvicorn told only the pipelined request about the lost connection, so the running
stream kept writing to the closed transport: three tracebacks per such client)."""

from __future__ import annotations

import socket
import time

import orjson
from tests.gateway.conftest import MASTER_KEY, GatewayFactory, deployment
from tests.wire import ReplayUpstream, Reply, load, split_events

STREAM = load("openai/chat-stream-include-usage.httprr.txt")[0]


def test_a_client_gone_with_a_pipelined_request_leaves_no_traceback(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        slow = Reply(200, {"content-type": "text/event-stream"}, chunks=split_events(STREAM.response_body),
                     chunk_delay=0.2)  # fmt: skip
        for _ in range(2):
            upstream.add("/v1/chat/completions", slow)
        served = gateway({"model_list": [deployment("gpt", "openai/gpt-4o", upstream.url + "/v1")]})
        body = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True})
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"authorization: Bearer " + MASTER_KEY.encode() + b"\r\ncontent-length: %d\r\n\r\n" % len(body) + body
        )
        host, port = served.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as client:
            client.sendall(request + request)  # the second waits behind the first
            assert client.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(0.3)
        time.sleep(1.5)  # the rest of the stream would have been written by now
        with served.http() as http:
            assert http.get("/health/liveliness").status_code == 200
        output = served.output()
        assert "Traceback" not in output and "ERROR" not in output
