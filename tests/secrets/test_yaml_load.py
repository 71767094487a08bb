"""YAML loading: YAML 1.2 scalars, comment placement as sops does it, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from seance.secrets.errors import SecretsError
from seance.secrets.tree import Branch, Comment
from seance.secrets.yaml_emit import dump_yaml
from seance.secrets.yaml_load import load_yaml


def load(text: str) -> Branch:
    docs = load_yaml(text, "f.yaml")
    assert len(docs) == 1
    return docs[0]


def test_yaml_1_2_scalars() -> None:
    doc = load("a: yes\nb: 0o17\nc: 0x1F\nd: 1_000\ne: .inf\nf: ~\ng: 2025-01-02\nh: '42'\ni: True\nj: 1.5\n")
    values = dict(list(doc))
    assert values["a"] == "yes" and values["b"] == 15 and values["c"] == 31 and values["d"] == 1000
    assert values["e"] == float("inf") and values["f"] is None and values["h"] == "42" and values["i"] is True
    assert values["g"] == datetime(2025, 1, 2, tzinfo=UTC) and values["j"] == 1.5


def test_comments_are_placed_like_sops() -> None:
    doc = load(
        "# top\n"
        "a: 1 # after a\n"
        "b:\n"
        "    # inside b\n"
        "    c: 2\n"
        "    # end of b\n"
        "list:\n"
        "    - x # after x\n"
        "    # before y\n"
        "    - y\n"
        "# end of file\n"
    )
    assert doc == Branch(
        [
            (Comment(" top"), None),
            (Comment(" after a"), None),
            ("a", 1),
            ("b", Branch([(Comment(" inside b"), None), ("c", 2), (Comment(" end of b"), None)])),
            ("list", [Comment(" after x"), "x", Comment(" before y"), "y"]),
            (Comment(" end of file"), None),
        ]
    )


def test_hash_inside_strings_and_block_scalars_is_not_a_comment() -> None:
    doc = load("a: 'x # y'\nb: |\n    # kept\n    text\nc: d#e\n")
    assert doc == Branch([("a", "x # y"), ("b", "# kept\ntext\n"), ("c", "d#e")])


def test_multiple_documents_keep_their_own_comments() -> None:
    docs = load_yaml("a: 1\n# one\n---\n# two\nb: 2\n", "f.yaml")
    assert docs == [Branch([("a", 1), (Comment(" one"), None)]), Branch([(Comment(" two"), None), ("b", 2)])]
    assert dump_yaml(docs) == "a: 1\n# one\n---\n# two\nb: 2\n"


def test_empty_file_is_one_empty_document() -> None:
    assert load_yaml("", "f.yaml") == [Branch()]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2\n", r"f\.yaml: not valid YAML at line \d+"),
        ("- a\n- b\n", "top level of a YAML document must be a mapping"),
        ("a: 1\na: 2\n", "line 2: duplicate key 'a'"),
        ("1: one\n", "line 1: only string keys are supported"),
        ("a: b: c\n", "not valid YAML at line 1"),
    ],
)
def test_bad_yaml_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(SecretsError, match=message) as caught:
        load_yaml(text, "f.yaml")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("block", "value"),
    [
        (">-\n    alpha\n    beta\n", "alpha beta"),
        (">\n    alpha\n    beta\n", "alpha beta\n"),
        (">+\n    alpha\n    beta\n\n", "alpha beta\n\n"),
        (">\n    one\n\n    two\n      more\n    three\n", "one\ntwo\n  more\nthree\n"),
        (">2-\n    lead\n   x\n", "  lead\n x"),
        (">-\n    trailing  \n    space\n", "trailing   space"),
    ],
)
def test_folded_scalars_fold_lines_into_spaces(block: str, value: str) -> None:
    assert load(f"KEY: {block}") == Branch([("KEY", value)])


def test_a_folded_key_and_a_folded_binary_value() -> None:
    doc = load("? >-\n    folded\n    key\n: !!binary >-\n    aGVs\n    bG8=\n")
    assert doc == Branch([("folded key", "hello")])
