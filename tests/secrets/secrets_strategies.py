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
