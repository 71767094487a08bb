"""upstream.rate_limits_of: a provider's rate-limit headers under OpenAI's names and in its forms."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from seance.gateway.upstream.rate_limits import rate_limits_of


def reset_in(seconds: float) -> bytes:
    """Anthropic's anthropic-ratelimit-requests-reset for a time this far from now, as it writes it."""
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    (value,) = rate_limits_of(
        [(b"anthropic-ratelimit-requests-reset", when.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode())]
    )
    assert value[0] == b"x-ratelimit-reset-requests"
    return value[1]


@pytest.mark.parametrize(
    ("seconds", "pattern"),
    [
        (-30, rb"0s"),  # passed: nothing to wait for
        # (a slow machine may take a few hundred ms between the time made and its reading)
        (0.5, rb"[1-4]\d\dms|500ms"),
        (12.5, rb"1[12](\.\d+)?s"),
        (72, rb"1m1[012](\.\d+)?s"),
        (3 * 3600 + 65, rb"3h1m[45](\.\d+)?s"),
    ],
)
def test_anthropics_reset_times_become_openais_durations(seconds: float, pattern: bytes) -> None:
    assert re.fullmatch(pattern, reset_in(seconds))


def test_a_reset_that_is_not_a_time_with_its_zone_is_not_sent() -> None:
    for value in (b"soon", b"2026-08-19T14:34:11", b"\xff"):
        assert rate_limits_of([(b"anthropic-ratelimit-tokens-reset", value)]) == []


def test_mistrals_per_minute_counts_under_openais_names() -> None:
    """As the recordings of tests/fixtures/wire/mistral send them (the query cost is not a limit)."""
    sent = [
        (b"X-Ratelimit-Limit-Tokens-Minute", b"100000"), (b"X-Ratelimit-Remaining-Tokens-Minute", b"98321"),
        (b"X-Ratelimit-Tokens-Query-Cost", b"32"), (b"X-Ratelimit-Limit-Req-Minute", b"100"),
        (b"X-Ratelimit-Remaining-Req-Minute", b"99"),
    ]  # fmt: skip
    assert rate_limits_of(sent) == [
        (b"x-ratelimit-limit-tokens", b"100000"), (b"x-ratelimit-remaining-tokens", b"98321"),
        (b"x-ratelimit-limit-requests", b"100"), (b"x-ratelimit-remaining-requests", b"99"),
    ]  # fmt: skip
