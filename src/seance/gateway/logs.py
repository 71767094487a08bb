"""Logging: one handler on stderr, plain text or one JSON object per line (`--log-format json`) that
log collectors parse. Records may carry structured fields (`extra={"fields": {...}}`): the access
log does; JSON output puts them at the top level, plain output after the message as key=value.

Levels: `seance.*` at the chosen level (default INFO: the ready and shutdown lines, WARNINGs for
failures; nothing per request); uvicorn's own loggers one step quieter unless debugging. The access
log (`seance.access`) is its own switch: off by default, on with --access-log or a level of INFO or
DEBUG asked for through SEANCE_LOG / LITELLM_LOG.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

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


def setup(level: str = "info", fmt: str = "plain", access_log: bool = False) -> None:
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
    logging.getLogger("seance.access").setLevel(logging.INFO if access_log else logging.CRITICAL + 1)
