"""Scalar text exactly as the Go `sops` binary writes it.

The MAC and the plaintext inside each `ENC[…]` are computed from these spellings (Go's
`strconv.FormatFloat`, `time.Time.MarshalText`), so a file is only interoperable if we spell a
value byte for byte the way Go does. Python's own `repr` differs (`1e+21` vs `1000000000000000000000`).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |value| and the point position: |value| = 0.DIGITS * 10**point."""
    normalized = Decimal(repr(abs(value))).normalize()
    _, digit_tuple, exponent = normalized.as_tuple()
    digits = "".join(str(d) for d in digit_tuple) or "0"
    assert isinstance(exponent, int)
    if digits == "0":
        return "0", 1
    return digits, len(digits) + exponent


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exponent(digits: str, point: int) -> str:
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _special(value: float) -> str | None:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return None


def format_float_f(value: float) -> str:
    """Go `strconv.FormatFloat(v, 'f', -1, 64)`: what sops encrypts and hashes for a float."""
    special = _special(value)
    if special is not None:
        return special
    digits, point = _shortest_digits(value)
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    return sign + _fixed(digits, point)


def format_float_g(value: float) -> str:
    """Go `strconv.FormatFloat(v, 'g', -1, 64)`: how YAML output (yaml.v3) spells a float."""
    special = _special(value)
    if special is not None:
        return special
    digits, point = _shortest_digits(value)
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    exp = point - 1
    if exp < -4 or exp >= 6:
        return sign + _exponent(digits, point)
    return sign + _fixed(digits, point)


def format_float_yaml(value: float) -> str:
    text = format_float_g(value)
    return {"+Inf": ".inf", "-Inf": "-.inf", "NaN": ".nan"}.get(text, text)


def format_float_json(value: float) -> str:
    """Go `encoding/json` spelling of a float64 (exponent only outside [1e-6, 1e21))."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError("JSON cannot hold NaN or infinity")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        digits, point = _shortest_digits(value)
        sign = "-" if value < 0 else ""
        text = sign + _exponent(digits, point)
        return re.sub(r"e([+-])0(\d)$", r"e\1\2", text)
    return format_float_f(value)


def format_time(value: datetime) -> str:
    """Go `time.Time.MarshalText` (RFC 3339 with trimmed nanoseconds); a naive time counts as UTC."""
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += ("." + f"{value.microsecond:06d}").rstrip("0")
    offset = value.utcoffset()
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


_TIME = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:[Tt]|[ \t]+)(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:[ \t]*(Z|[+-]\d{1,2}(?::?\d{2})?))?)?$"
)


def parse_time(text: str) -> datetime | None:
    """A YAML timestamp or RFC 3339 text as an aware datetime; None when it is not one."""
    match = _TIME.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz = UTC
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        hours, _, minutes = zone[1:].partition(":")
        if not minutes and len(hours) > 2:
            hours, minutes = hours[:2], hours[2:]
        tz = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tz)
    except ValueError:
        return None
