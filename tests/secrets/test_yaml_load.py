"""YAML loading: YAML 1.2 scalars, comment placement as sops does it, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from secrets_testkit import FLOW_SCALARS_OVER_LINES

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


@pytest.mark.parametrize(("scalar", "value"), FLOW_SCALARS_OVER_LINES)
def test_quoted_scalars_over_several_lines_fold_as_yaml_1_2_says(scalar: str, value: str) -> None:
    assert load(f"k0: {scalar}\n") == Branch([("k0", value)])


def test_integers_with_a_leading_zero_are_octal_as_in_sops() -> None:
    values = dict(list(load("a: 017\nb: -0_17\nc: 08\nd: 0\ne: 00\nf: !!int '017'\n")))
    assert values == {"a": 15, "b": -15, "c": 8.0, "d": 0, "e": 0, "f": 15}
    assert isinstance(values["c"], float)  # yaml.v3: no octal, so a float (sops encrypts it as type:float)


@pytest.mark.parametrize(
    "value",
    ['!!null "x"', "!!null x", '!!bool "yes"', "!!bool 1", '!!bool ""', "!!int abc", "!!int 1.0", "!!int ' 1'",
     "!!int 0x_", "!!int |\n  12\n", '!!float "-.NaN"', "!!timestamp x", "&anchor !!null secret"],
)  # fmt: skip
def test_a_tagged_value_that_is_not_of_its_tag_is_an_error(value: str) -> None:
    kind = value.split("!!")[1].split()[0]
    with pytest.raises(SecretsError, match=rf"^f\.yaml: line 2: a value tagged !!{kind} is not an? \w+$") as caught:
        load_yaml(f"ok: 1\nk: {value}\n", "f.yaml")
    assert "secret" not in str(caught.value) and "abc" not in str(caught.value)


def test_tagged_values_that_are_of_their_tag_are_read() -> None:
    text = "a: !!null ''\nb: !!bool 'True'\nc: !!int '0x1F'\nd: !!float '1'\ne: !!float 1e3\nf: !!str 1\ng: !foo x\n"
    assert dict(list(load(text))) == {"a": None, "b": True, "c": 31, "d": 1.0, "e": 1000.0, "f": "1", "g": "x"}
