"""JSON in and out, as sops writes it (Go's encoding/json escapes and float spelling, tab indent)."""

from __future__ import annotations

import pytest

from seance.secrets.errors import SecretsError
from seance.secrets.json_store import dump_json, load_json
from seance.secrets.tree import Branch


def test_go_style_output() -> None:
    doc = Branch([("s", "<a&b>\u2028\b\x01"), ("f", 1e21), ("g", 2.5), ("i", 7), ("e", []), ("m", Branch())])
    assert dump_json([doc]) == (
        '{\n\t"s": "\\u003ca\\u0026b\\u003e\\u2028\\b\\u0001",\n\t"f": 1e+21,\n\t"g": 2.5,\n\t"i": 7,\n'
        '\t"e": [],\n\t"m": {}\n}\n'
    )


def test_round_trip_keeps_order_and_types() -> None:
    text = '{"b": 1, "a": [1.5, true, null, "x"], "c": {"d": -3}}'
    doc = load_json(text, "f.json")[0]
    assert doc == Branch([("b", 1), ("a", [1.5, True, None, "x"]), ("c", Branch([("d", -3)]))])
    assert load_json(dump_json([doc]), "f.json") == [doc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1,}', r"f\.json: not valid JSON at line 1"),
        ("[1, 2]", "top level of a JSON document must be an object"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
    ],
)
def test_bad_json_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(SecretsError, match=message):
        load_json(text, "f.json")


def test_nan_and_several_documents_are_refused() -> None:
    with pytest.raises(SecretsError, match="NaN or infinity"):
        dump_json([Branch([("x", float("nan"))])])
    with pytest.raises(SecretsError, match="exactly one document"):
        dump_json([Branch(), Branch()])
