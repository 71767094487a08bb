"""fronts.usd: x-litellm-response-cost as fixed decimals, exact to the picodollar."""

from __future__ import annotations

import pytest

from seance.gateway.fronts import usd


@pytest.mark.parametrize(
    ("cost", "text"),
    [
        (1.5e-7 * 12 + 6e-7 * 8, b"0.0000066"),  # repr would say 6.5999999999999995e-06
        (0.0, b"0.0"),
        (1.0, b"1.0"),
        (12.345678901234567, b"12.345678901235"),
        (3e-12, b"0.000000000003"),
        (4e-13, b"0.0"),  # below a picodollar
        (0.1 + 0.2, b"0.3"),
    ],
)
def test_fixed_decimals(cost: float, text: bytes) -> None:
    assert usd(cost) == text
    assert float(text) == pytest.approx(cost, abs=1e-12)
