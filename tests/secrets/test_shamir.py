"""Shamir splitting of the data key across key groups."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seance.secrets.errors import SecretsError
from seance.secrets.shamir import combine, split


@settings(max_examples=40, deadline=None)
@given(secret=st.binary(min_size=1, max_size=32), parts=st.integers(2, 5), data=st.data())
def test_any_threshold_shares_recover_the_secret(secret: bytes, parts: int, data: st.DataObject) -> None:
    threshold = data.draw(st.integers(2, parts))
    shares = split(secret, parts, threshold)
    assert all(share[-1] == index + 1 for index, share in enumerate(shares))
    for subset in itertools.combinations(shares, threshold):
        assert combine(list(subset)) == secret


def test_fewer_shares_do_not_recover_it() -> None:
    secret = bytes(range(32))
    shares = split(secret, 3, 3)
    assert combine(shares[:2]) != secret


def test_bad_parameters_are_clear_errors() -> None:
    with pytest.raises(SecretsError, match="threshold"):
        split(b"x", 2, 3)
    with pytest.raises(SecretsError, match="same x coordinate"):
        combine([b"ab\x01", b"cd\x01"])
