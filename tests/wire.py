"""The recorded provider traffic in tests/fixtures/wire and a loopback server that replays it.

`load("anthropic/messages-stream-text.yaml")` reads any of the recording formats described in the
fixtures' INDEX.md (Go httprr v1, Python vcrpy incl. pydantic-ai's `parsed_body` and httpx-style
`content:`, Ruby VCR incl. `!binary`, huggingface.js tape entries) into `Exchange`s whose bodies
are the bytes on the wire after content decoding (gzip and chunk framing removed).

`ReplayUpstream` is an aiohttp server on 127.0.0.1 (ephemeral port, own thread and loop) that
answers each (method, path) from a FIFO queue of Exchanges or hand-made `Reply`s, and records what
it received. Streams go out event by event, like the real upstream sends them.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import gzip
import re
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor

FIXTURES: Path = Path(__file__).resolve().parent / "fixtures" / "wire"


@dataclass
class Exchange:
    method: str
    url: str
    request_headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    def request_json(self) -> Any:
        return orjson.loads(self.request_body)

    def response_json(self) -> Any:
        return orjson.loads(self.response_body)


def load(relpath: str) -> list[Exchange]:
    """The exchanges of one recording, e.g. "openai/chat-nonstream.httprr.txt"."""
    return copy.deepcopy(_load(relpath))


@functools.cache
def _load(relpath: str) -> list[Exchange]:
    path = FIXTURES / relpath
    data = path.read_bytes()
    if path.name.endswith(".httprr.txt"):
        return _load_httprr(data)
    if path.suffix == ".json":
        return _load_tape(data)
    if path.suffix in (".yaml", ".yml"):
        return _load_cassette(data)
    raise ValueError(f"{relpath}: not a recording format this loader knows")


# --- Go httprr v1 -----------------------------------------------------------------------------


def _load_httprr(data: bytes) -> list[Exchange]:
    header = b"httprr trace v1\n"
    if not data.startswith(header):
        raise ValueError("not an httprr trace v1 file")
    pos, exchanges = len(header), []
    while pos < len(data):
        eol = data.index(b"\n", pos)
        req_len, resp_len = (int(n) for n in data[pos:eol].split())
        pos = eol + 1
        request, pos = data[pos : pos + req_len], pos + req_len
        response, pos = data[pos : pos + resp_len], pos + resp_len
        start, req_headers, req_body = _split_http(request)
        method, url, _ = start.split(" ", 2)
        status_line, resp_headers, resp_body = _split_http(response)
        exchanges.append(
            Exchange(
                method, url, req_headers, _decode_body(req_body),
                int(status_line.split(" ", 2)[1]), resp_headers, _decode_body(resp_body),
            )
        )  # fmt: skip
    return exchanges


def _split_http(message: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = message.partition(b"\r\n\r\n")
    if not _:
        head, _, body = message.partition(b"\n\n")
    lines = head.decode("latin-1").splitlines()
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        _add_header(headers, name, value.strip())
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return lines[0], headers, body


def _dechunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while pos < len(body):
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            break
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


# --- huggingface.js tapes ----------------------------------------------------------------------


def _load_tape(data: bytes) -> list[Exchange]:
    exchanges = []
    for entry in orjson.loads(data).values():
        init, response = entry.get("init", {}), entry["response"]
        req_headers: dict[str, str] = {}
        for name, value in init.get("headers", {}).items():
            _add_header(req_headers, name, value)
        resp_headers: dict[str, str] = {}
        for name, value in response.get("headers", {}).items():
            _add_header(resp_headers, name, value)
        exchanges.append(
            Exchange(
                init.get("method", "GET").upper(), entry["url"], req_headers,
                _to_bytes(init.get("body")), int(response["status"]), resp_headers,
                _decode_body(_to_bytes(response.get("body"))),
            )
        )  # fmt: skip
    return exchanges


# --- vcrpy and Ruby VCR cassettes -------------------------------------------------------------


class _CassetteConstructor(SafeConstructor):
    """Ruby VCR writes `!binary` (base64 of the raw bytes); vcrpy's `!!binary` is standard YAML."""


def _construct_ruby_binary(constructor: SafeConstructor, node: Any) -> bytes:
    return base64.b64decode("".join(str(constructor.construct_scalar(node)).split()))


_CassetteConstructor.add_constructor("!binary", _construct_ruby_binary)


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.Constructor = _CassetteConstructor
    return yaml


def _load_cassette(data: bytes) -> list[Exchange]:
    doc = _yaml().load(data)
    if "http_interactions" in doc:  # Ruby VCR
        return [_ruby_interaction(i) for i in doc["http_interactions"]]
    return [_vcrpy_interaction(i) for i in doc["interactions"]]


def _ruby_interaction(item: dict[str, Any]) -> Exchange:
    request, response = item["request"], item["response"]
    req_headers = _headers(request.get("headers"))
    resp_headers = _headers(response.get("headers"))
    return Exchange(
        str(request["method"]).upper(), request["uri"], req_headers,
        _decode_body(_to_bytes((request.get("body") or {}).get("string"))),
        int(response["status"]["code"]), resp_headers,
        _decode_body(_to_bytes((response.get("body") or {}).get("string"))),
    )  # fmt: skip


def _vcrpy_interaction(item: dict[str, Any]) -> Exchange:
    request, response = item["request"], item["response"]
    req_headers = _headers(request.get("headers"))
    resp_headers = _headers(response.get("headers"))
    if "parsed_body" in request:
        req_body = orjson.dumps(request["parsed_body"])
    else:
        body = request.get("body")
        req_body = _to_bytes(body.get("string") if isinstance(body, dict) else body)
    if "parsed_body" in response:
        resp_body = orjson.dumps(response["parsed_body"])
    elif "content" in response:  # httpx-style cassettes
        resp_body = _to_bytes(response["content"])
    else:
        body = response.get("body")
        resp_body = _to_bytes(body.get("string") if isinstance(body, dict) else body)
    status = response["status"]["code"] if "status" in response else response["status_code"]
    return Exchange(
        str(request["method"]).upper(), request["uri"], req_headers, _decode_body(req_body),
        int(status), resp_headers, _decode_body(resp_body),
    )  # fmt: skip


# --- shared helpers ----------------------------------------------------------------------------


def _headers(raw: dict[str, Any] | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in (raw or {}).items():
        for item in value if isinstance(value, list) else [value]:
            _add_header(headers, name, str(item))
    return headers


def _add_header(headers: dict[str, str], name: str, value: str) -> None:
    key = name.strip().lower()
    headers[key] = f"{headers[key]}, {value}" if key in headers else value


def _to_bytes(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value if isinstance(value, bytes) else value.encode("utf-8")


def _decode_body(body: bytes) -> bytes:
    # Recorders disagree on whether they store the encoded or decoded body; the gzip magic decides.
    if body[:2] == b"\x1f\x8b":
        return gzip.decompress(body)
    return body


# --- replay server -----------------------------------------------------------------------------


@dataclass
class Reply:
    """A hand-made upstream answer (errors, cuts, delays the recordings do not show)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks: list[bytes] | None = None  # sent one by one, flushed, `chunk_delay` apart
    chunk_delay: float = 0.0
    cut_after: int | None = None  # close the connection abruptly after that many chunks
    delay: float = 0.0  # seconds before the headers


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


_HOP_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive"}


def reply_from_exchange(exchange: Exchange) -> Reply:
    """The recorded answer, streams split so each event arrives as its own write."""
    headers = {k: v for k, v in exchange.response_headers.items() if k not in _HOP_HEADERS}
    content_type = headers.get("content-type", "")
    body = exchange.response_body
    if "text/event-stream" in content_type:
        return Reply(exchange.status, headers, chunks=split_events(body))
    if "ndjson" in content_type:
        return Reply(exchange.status, headers, chunks=body.splitlines(keepends=True))
    return Reply(exchange.status, headers, body)


def split_events(body: bytes) -> list[bytes]:
    """An SSE body cut after each blank line (LF or CRLF), separators kept."""
    parts = re.split(rb"(\r\n\r\n|\n\n|\r\r)", body)
    chunks = [parts[i] + (parts[i + 1] if i + 1 < len(parts) else b"") for i in range(0, len(parts), 2)]
    return [c for c in chunks if c]


class ReplayUpstream:
    """A loopback upstream. Use as a context manager; `url` is "http://127.0.0.1:PORT"."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Received] = []
        self._queues: dict[tuple[str, str], deque[Reply]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="replay")
        self._runner: web.AppRunner | None = None

    def add(self, path: str, reply: Exchange | Reply, *, method: str = "POST") -> None:
        if isinstance(reply, Exchange):
            reply = reply_from_exchange(reply)
        with self._lock:
            self._queues.setdefault((method.upper(), path), deque()).append(reply)

    def pending(self) -> list[tuple[str, str]]:
        """(method, path) of replies queued but never asked for."""
        with self._lock:
            return [key for key, queue in self._queues.items() for _ in queue]

    def __enter__(self) -> ReplayUpstream:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            Received(
                request.method, request.path, dict(request.query),
                {k.lower(): v for k, v in request.headers.items()}, body,
            )
        )  # fmt: skip
        with self._lock:
            queue = self._queues.get((request.method, request.path))
            reply = queue.popleft() if queue else None
        if reply is None:
            message = f"replay: nothing queued for {request.method} {request.path}"
            return web.json_response({"error": {"message": message, "type": "replay"}}, status=599)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.chunks is None:
            return web.Response(status=reply.status, headers=reply.headers, body=reply.body)
        return await self._stream(request, reply)

    async def _stream(self, request: web.Request, reply: Reply) -> web.StreamResponse:
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        assert reply.chunks is not None
        for sent, chunk in enumerate(_chunks(reply.chunks)):
            if reply.cut_after is not None and sent == reply.cut_after:
                break
            if sent and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            await response.write(chunk)
        if reply.cut_after is not None:
            # An abrupt end: no terminating zero-length chunk, the socket just goes away.
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        await response.write_eof()
        return response


def _chunks(chunks: list[bytes]) -> Iterator[bytes]:
    yield from (c for c in chunks if c)
