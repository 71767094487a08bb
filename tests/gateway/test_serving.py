"""serving.GatewayCycle writes an answer's head as uvicorn's own cycle does, byte for byte."""

from __future__ import annotations

import asyncio
import re

import pytest
from uvicorn.protocols.http.httptools_impl import HEADER_RE, HEADER_VALUE_RE, RequestResponseCycle

from seance.gateway.serving import WRITEV_FROM, GatewayCycle


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.vectored = 0

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:  # uvloop: one writev
        self.writes.append(b"".join(parts))
        self.vectored += 1

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class Flow:
    write_paused = False


def cycle(cls: type[RequestResponseCycle], method: str, keep_alive: bool) -> tuple[RequestResponseCycle, Transport]:
    transport = Transport()
    made = cls(
        scope={"method": method, "http_version": "1.1"},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=Flow(),  # type: ignore[arg-type]
        logger=None,  # type: ignore[arg-type]
        access_logger=None,  # type: ignore[arg-type]
        access_log=False,
        default_headers=[(b"date", b"Mon, 30 Nov 2026 03:00:00 GMT"), (b"server", b"uvicorn")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    return made, transport


ANSWERS: list[tuple[str, bool, int, list[tuple[bytes, bytes]], list[bytes]]] = [
    ("POST", True, 200, [(b"content-type", b"application/json"), (b"content-length", b"2")], [b"{}"]),
    ("POST", False, 200, [(b"Content-Length", b"5"), (b"x-request-id", b"abc")], [b"hel", b"lo"]),
    ("POST", True, 200, [(b"content-type", b"text/event-stream")], [b"data: 1\n\n", b"data: 2\n\n", b""]),
    ("POST", True, 401, [(b"content-length", b"0")], [b""]),
    ("HEAD", True, 200, [(b"content-length", b"10")], [b""]),
    ("GET", True, 204, [], [b""]),
    ("POST", True, 200, [(b"connection", b"keep-alive, Close"), (b"content-length", b"1")], [b"x"]),
    ("POST", True, 200, [(b"X-Custom", b"A"), (b"Transfer-Encoding", b"Chunked")], [b"ab", b""]),
    ("POST", True, 200, [(b"Connection", b"close"), (b"Content-Length", b"1"), (b"content-length", b"1")], [b"x"]),
    ("POST", True, 200, [(b"content-length", b"20000")], [b"e" * 20000]),  # written beside its head
    ("POST", True, 200, [], [b"s" * 9000, b"", b"t", b"u" * 9000]),  # chunks large and small, one empty
    ("POST", False, 200, [(b"content-type", b"text/event-stream")], [b"data: 1\n\n", b"v" * 9000, b""]),
    ("HEAD", True, 200, [(b"transfer-encoding", b"chunked")], [b""]),
    ("POST", True, 200, [(b"transfer-encoding", b"chunked"), (b"content-length", b"3")], [b"abc", b""]),
]


@pytest.mark.parametrize(("method", "keep_alive", "status", "headers", "parts"), ANSWERS)
async def test_the_same_bytes_as_uvicorns_cycle(
    method: str, keep_alive: bool, status: int, headers: list[tuple[bytes, bytes]], parts: list[bytes]
) -> None:
    outputs = []
    for cls in (RequestResponseCycle, GatewayCycle):
        made, transport = cycle(cls, method, keep_alive)
        await made.send({"type": "http.response.start", "status": status, "headers": headers})
        for i, part in enumerate(parts):
            await made.send({"type": "http.response.body", "body": part, "more_body": i < len(parts) - 1})
        assert made.response_complete
        outputs.append((b"".join(transport.writes), transport.closed, made.keep_alive))
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    "headers",
    [
        [(b"bad name", b"v")],
        [(b"x", b"line\r\nbreak")],
        [(b"ok", b"fine"), (b"x", b"nul\x00")],
        [(b"content-length", b"1\x00")],  # refused as a bad value before its length is read
        [(b"x-tab", b"a\tb"), (b"x", b"\x7f")],
        [(b"Bad:Name", b"v")],
    ],
)
async def test_bad_headers_are_refused_as_uvicorn_refuses_them(headers: list[tuple[bytes, bytes]]) -> None:
    for cls in (RequestResponseCycle, GatewayCycle, GatewayCycle):  # twice: the names are known then
        made, _ = cycle(cls, "GET", True)
        with pytest.raises(RuntimeError, match="Invalid HTTP header"):
            await made.send({"type": "http.response.start", "status": 200, "headers": headers})


async def test_a_large_body_goes_beside_its_head_in_one_writev() -> None:
    made, transport = cycle(GatewayCycle, "POST", True)
    body = b"e" * WRITEV_FROM
    await made.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await made.send({"type": "http.response.body", "body": body})
    assert transport.vectored == 1 and len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n" + body)
    made, transport = cycle(GatewayCycle, "POST", True)
    await made.send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await made.send({"type": "http.response.body", "body": b"{}"})
    assert transport.vectored == 0 and len(transport.writes) == 1  # a small one: copied behind it, one write


def test_uvicorns_checks_are_single_byte_classes() -> None:
    """What makes one call over the joined names (values) the same as one call per name (value)."""
    for pattern in (HEADER_RE, HEADER_VALUE_RE):
        assert pattern.pattern.startswith(b"[") and pattern.pattern.endswith(b"]"), pattern.pattern
        assert re.compile(pattern.pattern + b"+").pattern  # a class: a quantifier applies to all of it
        matched = [byte for byte in range(256) if pattern.search(bytes([byte]))]
        assert matched
        for byte in range(256):
            found = pattern.search(bytes([byte]) * 3)
            assert found is None or found.end() - found.start() == 1
