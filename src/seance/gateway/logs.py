"""Logging: one handler on stderr, plain text or one JSON object per line (`--log-format json`) that
log collectors parse. Records may carry structured fields (`extra={"fields": {...}}`); JSON output
puts them at the top level.

Levels: `seance.*` at the chosen level (default INFO: the ready and shutdown lines, WARNINGs for
failures; nothing per request); uvicorn's own loggers one step quieter unless debugging. The access
log is its own switch (off by default; on with --access-log, or a level of INFO or DEBUG asked for
through SEANCE_LOG / LITELLM_LOG) and has its own writer, `AccessWriter`, in the same formats.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import IO, Any

import orjson

FORMATS = ("plain", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class AccessWriter:
    """The access log's own writer, in the same formats as the handler above but without the logging
    module's per-record machinery (a LogRecord, caller lookup, a lock and a flush per line): lines
    of one event-loop turn are written together. Measured on this 2-core machine (loaded): 70-78 µs
    per line through `logging`, against a few µs here."""

    def __init__(self, fmt: str = "plain", stream: IO[str] | None = None) -> None:
        self.json = fmt == "json"
        self.stream = stream
        self.lines: list[str] = []
        self.scheduled = False
        self._second = -1
        self._stamp = ""

    def write(self, message: str, fields: dict[str, Any] | None = None) -> None:
        """One line; `fields` go into the JSON format's object (a plain line is the message)."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        stamp = f"{self._stamp}.{int((now - second) * 1000):03d}Z"
        if self.json:
            entry = {"time": stamp, "level": "INFO", "logger": "seance.access", "message": message, **(fields or {})}
            self.lines.append(orjson.dumps(entry, default=str).decode())
        else:
            self.lines.append(f"{stamp} INFO seance.access: {message}")
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        lines, self.lines = self.lines, []
        stream = self.stream or sys.stderr
        try:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except (OSError, ValueError):  # stderr closed (the container is going away): nothing to do
            pass


def setup(level: str = "info", fmt: str = "plain") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    numeric = logging.getLevelName(level.upper())
    logging.getLogger("seance").setLevel(numeric)
    quieter = logging.DEBUG if numeric <= logging.DEBUG else max(numeric, logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(quieter)
