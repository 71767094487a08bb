"""Every recording listed in the fixtures' INDEX.md loads, and the replay server serves it back."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request

import pytest
from tests.wire import FIXTURES, Exchange, ReplayUpstream, Reply, load, split_events

INDEXED = sorted(set(re.findall(r"^\| `([^`]+)`", (FIXTURES / "INDEX.md").read_text(), re.M)))
RECORDINGS = [name for name in INDEXED if ".resp" not in name]
DECODED = [name for name in INDEXED if ".resp" in name]


def test_index_lists_files() -> None:
    assert len(RECORDINGS) > 40 and len(DECODED) > 30


@pytest.mark.parametrize("relpath", RECORDINGS)
def test_recording_loads(relpath: str) -> None:
    exchanges = load(relpath)
    assert exchanges
    for exchange in exchanges:
        assert exchange.method in ("GET", "POST")
        assert exchange.url.startswith(("http://", "https://", "<OLLAMA_API_BASE>"))
        assert 100 <= exchange.status < 600
        assert exchange.response_body[:2] != b"\x1f\x8b"  # gzip removed
        if exchange.method == "POST" and exchange.request_body:
            exchange.request_json()  # every POST body in the set is JSON


@pytest.mark.parametrize("relpath", DECODED)
def test_decoded_stream_equals_body_in_cassette(relpath: str) -> None:
    parent, _, rest = relpath.partition(".resp")
    number = int(rest.split(".")[0])
    suffix = next(s for s in (".httprr.txt", ".yaml", ".json") if (FIXTURES / (parent + s)).exists())
    exchange = load(parent + suffix)[number]
    assert exchange.response_body == (FIXTURES / relpath).read_bytes()


def test_httprr_chunked_body_is_dechunked() -> None:
    (exchange,) = load("ollama/native-chat-stream.httprr.txt")
    lines = exchange.response_body.splitlines()
    assert all(line.startswith(b"{") for line in lines)
    assert b'"done":true' in lines[-1]


def test_ruby_binary_and_vcrpy_gzip_bodies_decode() -> None:
    tools = load("anthropic/messages-nonstream-tools.yaml")
    assert tools[-1].response_json()["type"] == "message"
    gemini = load("gemini/stream-generate-content-json-array-tools.yaml")
    assert gemini[0].response_body.lstrip().startswith(b"[")


def test_split_events_keeps_every_byte() -> None:
    body = (FIXTURES / "gemini/stream-generate-content-sse-thinking.resp0.txt").read_bytes()
    chunks = split_events(body)
    assert b"".join(chunks) == body and len(chunks) > 1
    assert all(c.endswith(b"\r\n\r\n") for c in chunks)


def _post(url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_replay_serves_recorded_stream_and_records_requests() -> None:
    exchange = load("anthropic/messages-stream-text.yaml")[0]
    with ReplayUpstream() as upstream:
        upstream.add("/v1/messages", exchange)
        status, body = _post(upstream.url + "/v1/messages?beta=true", b'{"a": 1}')
        assert (status, body) == (200, exchange.response_body)
        (received,) = upstream.requests
        assert (received.method, received.path, received.query) == ("POST", "/v1/messages", {"beta": "true"})
        assert received.json() == {"a": 1}
        assert received.headers["content-type"] == "application/json"
        status, body = _post(upstream.url + "/v1/messages")
        assert status == 599 and b"/v1/messages" in body


def test_replay_cut_after_ends_without_terminating_chunk() -> None:
    with ReplayUpstream() as upstream:
        upstream.add("/s", Reply(chunks=[b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"], cut_after=2))
        host, port = upstream.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        assert b"data: 2" in received and b"data: 3" not in received
        assert not received.endswith(b"0\r\n\r\n")


def test_exchange_is_a_copy() -> None:
    first = load("openai/chat-nonstream.httprr.txt")[0]
    first.response_headers.clear()
    assert load("openai/chat-nonstream.httprr.txt")[0].response_headers
    assert isinstance(first, Exchange)
