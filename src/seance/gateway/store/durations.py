"""LiteLLM's durations ("30s", "10m", "24h", "7d", "1mo"), for key lifetimes and budget periods."""

from __future__ import annotations

import calendar
import re
import time
from datetime import UTC, datetime

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
# the longest duration taken: its end must still be a date (a "9999999999d" key was stored, and
# every answer that showed it failed), and nothing longer is a budget period or a key's lifetime
LONGEST_YEARS = 100
_MONTH = 31 * 86400


def iso(epoch: float) -> str:
    """A stored time (epoch seconds) as the management API shows it (ISO 8601, UTC)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def parse(text: str, field: str) -> tuple[int, str]:
    """(count, unit) of a duration; ValueError naming `field` when it is not one."""
    match = _PATTERN.match(str(text))
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"{field}: {text!r} is not a duration: a positive number and s, m, h, d, w or mo (e.g. 30d)")
    count, unit = int(match.group(1)), match.group(2)
    if count * _UNITS.get(unit, _MONTH) > LONGEST_YEARS * 366 * 86400:
        raise ValueError(f"{field}: {text!r} is longer than {LONGEST_YEARS} years")
    return count, unit


def after(text: str, field: str, start: float | None = None) -> float:
    """The epoch time `text` after `start` (now); months are calendar months."""
    count, unit = parse(text, field)
    start = time.time() if start is None else start
    if unit != "mo":
        return start + count * _UNITS[unit]
    moment = time.gmtime(start)
    month = moment.tm_mon - 1 + count
    year, month = moment.tm_year + month // 12, month % 12 + 1
    day = min(moment.tm_mday, calendar.monthrange(year, month)[1])
    return float(calendar.timegm((year, month, day, moment.tm_hour, moment.tm_min, moment.tm_sec))) + start % 1
