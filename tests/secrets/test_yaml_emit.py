"""YAML output in sops' (yaml.v3) layout: quoting, indentation, blocks. Each case was checked
against `sops decrypt` output (the interop tests compare hundreds more)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from seance.secrets.tree import Branch, Comment
from seance.secrets.yaml_emit import dump_yaml


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("plain text", "k: plain text"),
        ("yes", 'k: "yes"'),
        ("123", 'k: "123"'),
        ("0x1F", 'k: "0x1F"'),
        ("1:20", 'k: "1:20"'),
        ("2025-01-02", 'k: "2025-01-02"'),
        ("", 'k: ""'),
        ("null", 'k: "null"'),
        (" padded ", "k: ' padded '"),
        ("key: value", "k: 'key: value'"),
        ("# hash", "k: '# hash'"),
        ("a #b", "k: 'a #b'"),
        ("it's", "k: it's"),
        ("tab\there", 'k: "tab\\there"'),
        ("emoji 😀", 'k: "emoji \\U0001F600"'),
        ("nbsp\u00a0x", "k: nbsp\u00a0x"),
        ("ünïcödé", "k: ünïcödé"),
        (True, "k: true"),
        (42, "k: 42"),
        (1e21, "k: 1e+21"),
        (float("inf"), "k: .inf"),
        (None, "k: null"),
        (datetime(2025, 1, 2, tzinfo=UTC), "k: 2025-01-02T00:00:00Z"),
        # a number or date followed by a line break is text, written as a block (as yaml.v3 does)
        ("0\n", "k: |\n    0"),
        ("2025-01-02\n", "k: |\n    2025-01-02"),
        ("1:20\n", "k: |\n    1:20"),
    ],
)
def test_scalar_styles(value: object, line: str) -> None:
    assert dump_yaml([Branch([("k", value)])]) == line + "\n"


def test_block_scalars_and_chomping() -> None:
    doc = Branch([("keep", "a\n\n"), ("clip", "a\nb\n"), ("strip", "a\nb"), ("lead", " a\nb\n")])
    assert (
        dump_yaml([doc])
        == "keep: |+\n    a\n\nclip: |\n    a\n    b\nstrip: |-\n    a\n    b\nlead: |4\n     a\n    b\n"
    )


def test_indentation_of_nested_collections() -> None:
    doc = Branch([("a", [Branch([("b", 1), ("c", [1, [2]])]), [3], Branch()]), ("d", Branch([("e", [])]))])
    assert dump_yaml([doc]) == (
        "a:\n    - b: 1\n      c:\n        - 1\n        - - 2\n    - - 3\n    - {}\nd:\n    e: []\n"
    )


def test_comments_keys_and_documents() -> None:
    docs = [
        Branch([(Comment(" head"), None), ("n", 1), ("<<", Branch([("x", 1)])), ("multi\nkey", "v")]),
        Branch([("l", [Comment(" in list"), "x"])]),
    ]
    assert dump_yaml(docs) == (
        '# head\n"n": 1\n!!merge <<:\n    x: 1\n? |-\n    multi\n    key\n: v\n---\nl:\n    # in list\n    - x\n'
    )
