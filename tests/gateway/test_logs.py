"""The access log's writer: the same line formats as the log handler, lines of one loop turn
written together."""

from __future__ import annotations

import asyncio
import io
import logging
import re

import orjson

from seance.gateway.logs import AccessWriter, JSONFormatter, PlainFormatter

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _write(fmt: str, count: int) -> tuple[str, int]:
    stream = io.StringIO()
    writes = 0
    original = stream.write

    def counting(text: str) -> int:
        nonlocal writes
        writes += 1
        return original(text)

    stream.write = counting  # type: ignore[method-assign]
    writer = AccessWriter(fmt, stream)

    async def go() -> None:
        for i in range(count):
            writer.write(f"GET /v1/models 200 id=r{i}", {"request_id": f"r{i}", "status": 200})
        await asyncio.sleep(0)

    asyncio.run(go())
    return stream.getvalue(), writes


def test_plain_lines_match_the_handlers_format() -> None:
    text, writes = _write("plain", 3)
    lines = text.splitlines()
    assert writes == 1 and len(lines) == 3
    assert re.fullmatch(STAMP + r" INFO seance\.access: GET /v1/models 200 id=r0", lines[0])
    record = logging.LogRecord("seance.access", logging.INFO, "", 0, "GET /v1/models 200 id=r0", None, None)
    assert PlainFormatter().format(record).split(" ", 1)[1] == lines[0].split(" ", 1)[1]


def test_json_lines_carry_the_fields_like_the_handler() -> None:
    text, _ = _write("json", 2)
    entry = orjson.loads(text.splitlines()[1])
    assert re.fullmatch(STAMP, entry.pop("time"))
    assert entry == {"level": "INFO", "logger": "seance.access", "message": "GET /v1/models 200 id=r1",
                     "request_id": "r1", "status": 200}  # fmt: skip
    record = logging.LogRecord("seance.access", logging.INFO, "", 0, "m", None, None)
    assert set(orjson.loads(JSONFormatter().format(record))) == {"time", "level", "logger", "message"}


def test_a_line_without_fields() -> None:
    """The access log hook makes fields only for the JSON format; a plain line is its message."""
    for fmt in ("plain", "json"):
        stream = io.StringIO()
        writer = AccessWriter(fmt, stream)

        async def go(writer: AccessWriter = writer) -> None:
            writer.write("GET /health 200 id=r9")
            await asyncio.sleep(0)

        asyncio.run(go())
        line = stream.getvalue().rstrip("\n")
        if fmt == "plain":
            assert re.fullmatch(STAMP + r" INFO seance\.access: GET /health 200 id=r9", line)
        else:
            assert set(orjson.loads(line)) == {"time", "level", "logger", "message"}
