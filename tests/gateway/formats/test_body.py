from __future__ import annotations

import pytest

from seance.gateway.errors import BadRequest
from seance.gateway.formats.body import MAX_DEPTH, json_object


def test_an_object_is_parsed() -> None:
    assert json_object(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"a": ' + b"[" * (MAX_DEPTH + 5) + b"]" * (MAX_DEPTH + 5) + b"}", f"nests deeper than {MAX_DEPTH}"),
    ],
)
def test_anything_else_is_a_400_saying_why(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        json_object(raw)
    assert caught.value.status == 400 and message in caught.value.message


def test_a_body_as_deep_as_allowed_passes() -> None:
    deep = b'{"a": ' + b"[" * (MAX_DEPTH - 2) + b"]" * (MAX_DEPTH - 2) + b"}"
    assert isinstance(json_object(deep), dict)
