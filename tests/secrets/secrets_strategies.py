"""Hypothesis strategies for random SOPS documents (a plain module: tests/secrets is not a package)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from seance.secrets.tree import Branch, Comment

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
# multi-line keys (YAML "? |" complex keys) are covered by the sops interop test, not here
KEYS = st.text(
    st.characters(blacklist_categories=("Cs", "Zl", "Zp"), blacklist_characters="\n\r\x85"), max_size=12
).filter(lambda k: k != "sops")
TIMES = st.datetimes(
    min_value=datetime(1900, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(minutes=330))]),
)


def scalars(finite: bool = False) -> st.SearchStrategy[Any]:
    floats = st.floats(allow_nan=False, allow_infinity=not finite)
    return st.one_of(TEXT, st.integers(-(2**63), 2**63 - 1), floats, st.booleans(), st.none(), TIMES)


SCALARS = scalars()


def branch(pairs: list[tuple[str, Any]]) -> Branch:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        seen.setdefault(key, value)
    return Branch(seen.items())


def documents(finite: bool = False) -> st.SearchStrategy[Branch]:
    """Random top-level mappings of nested maps, lists and every scalar type (finite: JSON-safe)."""
    values = st.recursive(
        scalars(finite),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.lists(st.tuples(KEYS, children), max_size=4).map(branch),
        ),
        max_leaves=10,
    )
    return st.lists(st.tuples(KEYS, values), min_size=1, max_size=5).map(branch)


def comments() -> st.SearchStrategy[Comment]:
    return st.builds(Comment, st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1))


# -- YAML source text with every scalar style ----------------------------------------------------
# Characters a scalar's text may hold in any style (printable, so a block scalar can carry them too).
PRINTABLE = st.sampled_from(list("abcXYZ019 -:#,'\"\\.!&*|>%@`?{}[]\té✓😀"))
WORD = st.text(st.sampled_from(list("abcdefXYZ0189_./-")), min_size=1, max_size=6).map(lambda w: "w" + w)
# (YAML 1.2's `\/` is left out: yaml.v3, and so sops, refuses it, while ruamel reads it.)
_ESCAPES = ["\\\\", '\\"', "\\t", "\\n", "\\x41", "\\u00e9", "\\U0001F600", "\\0", "\\ ", "\\e", "\\_"]


@st.composite
def plain_scalar(draw: st.DrawFn, indent: str) -> str:
    """A plain scalar, maybe over several lines (folded into spaces; an empty line is a newline)."""
    lines = draw(st.lists(st.lists(WORD, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=3))
    separator = f"\n{indent}\n{indent}" if draw(st.booleans()) else f"\n{indent}"
    return separator.join(lines)


@st.composite
def single_quoted(draw: st.DrawFn, indent: str) -> str:
    lines = draw(st.lists(st.text(PRINTABLE, max_size=8), min_size=1, max_size=3))
    return "'" + f"\n{indent}".join(line.replace("'", "''").strip(" \t") or "x" for line in lines) + "'"


@st.composite
def double_quoted(draw: st.DrawFn, indent: str) -> str:
    parts = draw(st.lists(st.one_of(st.text(PRINTABLE, max_size=6), st.sampled_from(_ESCAPES)), max_size=6))
    text = "".join(part if part in _ESCAPES else part.replace("\\", "\\\\").replace('"', '\\"') for part in parts)
    if draw(st.booleans()):  # a line break (folded into a space) or an escaped one (joined)
        text += draw(st.sampled_from([f"\n{indent}", f"\\\n{indent}", f"\n\n{indent}"])) + "end"
    return f'"{text}"'


@st.composite
def block_scalar(draw: st.DrawFn, indent: str) -> str:
    """A literal or folded block with every chomping indicator, with or without an indentation
    indicator; lines may be empty, more indented, or end in spaces."""
    style = draw(st.sampled_from("|>"))
    chomp = draw(st.sampled_from(["", "-", "+"]))
    explicit = draw(st.booleans())
    lines = draw(
        st.lists(
            st.one_of(
                st.just(""),
                st.text(PRINTABLE, min_size=1, max_size=10).map(lambda s: s.lstrip(" \t") or "x"),
                st.text(PRINTABLE, min_size=1, max_size=6).map(lambda s: "  " + s),  # more indented
            ),
            max_size=5,
        )
    )
    first = next((line for line in lines if line), "")
    if first.startswith(" ") and not explicit:
        explicit = True  # a first line that starts with a space needs the indentation indicator
    trailing = draw(st.integers(0, 2))
    header = style + (str(len(indent)) if explicit else "")
    header = header + chomp if draw(st.booleans()) else (style + chomp + header[1:])
    body = "".join(f"\n{indent}{line}" if line else "\n" for line in lines) + "\n" * trailing
    return header + body


def styled_value(indent: str) -> st.SearchStrategy[str]:
    return st.one_of(plain_scalar(indent), single_quoted(indent), double_quoted(indent), block_scalar(indent))


@st.composite
def styled_documents(draw: st.DrawFn) -> str:
    """YAML text of one mapping whose values use every scalar style (the text is the test input:
    what a person writes, not what an emitter produces)."""
    entries = []
    for number in range(draw(st.integers(1, 8))):
        indent = " " * draw(st.integers(1, 4))
        value = draw(styled_value(indent))
        entries.append(f"k{number}: {value}" + ("" if value.endswith("\n") else "\n"))
    return "".join(entries)
