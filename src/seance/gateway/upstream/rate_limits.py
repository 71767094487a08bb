"""What a provider's answer says its rate limits have left, under OpenAI's header names: the
gateway's answers carry them to callers it does not limit itself (fronts/__init__.py), and the
metrics read them (pipeline/metrics.py). A provider with names of its own is mapped here."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import datetime

# A provider's rate-limit headers -> OpenAI's names for them, which the gateway's answers carry
# (LiteLLM's proxy does the same): OpenAI's own (and Groq's, Together's, Azure's…), Anthropic's,
# and Mistral's per-minute ones, as the recordings in tests/fixtures/wire show them. Anthropic's
# resets are times (RFC 3339), OpenAI's durations ("6m0s"): RESET_TIMES are made durations.
RATE_LIMIT_NAMES = {
    **{name: name for name in (
        b"x-ratelimit-limit-requests", b"x-ratelimit-limit-tokens", b"x-ratelimit-remaining-requests",
        b"x-ratelimit-remaining-tokens", b"x-ratelimit-reset-requests", b"x-ratelimit-reset-tokens",
    )},
    b"anthropic-ratelimit-requests-limit": b"x-ratelimit-limit-requests",
    b"anthropic-ratelimit-requests-remaining": b"x-ratelimit-remaining-requests",
    b"anthropic-ratelimit-tokens-limit": b"x-ratelimit-limit-tokens",
    b"anthropic-ratelimit-tokens-remaining": b"x-ratelimit-remaining-tokens",
    b"anthropic-ratelimit-requests-reset": b"x-ratelimit-reset-requests",
    b"anthropic-ratelimit-tokens-reset": b"x-ratelimit-reset-tokens",
    b"x-ratelimit-limit-req-minute": b"x-ratelimit-limit-requests",
    b"x-ratelimit-remaining-req-minute": b"x-ratelimit-remaining-requests",
    b"x-ratelimit-limit-tokens-minute": b"x-ratelimit-limit-tokens",
    b"x-ratelimit-remaining-tokens-minute": b"x-ratelimit-remaining-tokens",
}  # fmt: skip
RATE_LIMIT_LENGTHS = frozenset(map(len, RATE_LIMIT_NAMES))  # a name of another length is none of them
RESET_TIMES = frozenset({b"anthropic-ratelimit-requests-reset", b"anthropic-ratelimit-tokens-reset"})
_RATE_LIMIT_VALUE = re.compile(rb"[0-9A-Za-z.]{1,40}")  # a count or a duration ("6m0s"): nothing else is sent on


def rate_limits_of(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The rate-limit headers among an answer's (any case), under OpenAI's names, in their order,
    each name once (the first); a value that is not a plain count or duration is left out (it goes
    into the head the client is sent)."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if len(name) in RATE_LIMIT_LENGTHS:
            lowered = name.lower()
            standard = RATE_LIMIT_NAMES.get(lowered)
            if standard is None or standard in found:
                continue
            value = value.strip()
            if lowered in RESET_TIMES:
                value = _until(value)
            if _RATE_LIMIT_VALUE.fullmatch(value):
                found[standard] = value
    return list(found.items())


def _until(when: bytes) -> bytes:
    """An RFC 3339 time as OpenAI's reset durations say it, from now: b"0s", b"250ms", b"1m12s";
    b"" (not sent) when it is not a time."""
    try:
        at = datetime.fromisoformat(when.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return b""
    if at.tzinfo is None:
        return b""
    millis = max(0, round((at.timestamp() - time.time()) * 1000))
    if millis < 1000:
        return b"%dms" % millis if millis else b"0s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = (b"%.3f" % (rest / 1000)).rstrip(b"0").rstrip(b".")
    return (b"%dh" % hours if hours else b"") + (b"%dm" % minutes if hours or minutes else b"") + seconds + b"s"
