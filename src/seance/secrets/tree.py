"""The document tree sops works on, and its walk.

A mapping is a `Branch`: an ordered list of (key, value) pairs where a key may be a `Comment`
(sops keeps comments as entries so they can be encrypted in place). A sequence is a plain list whose
elements may be `Comment`s. Scalars are str, int, float, bool, bytes, datetime or None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias


@dataclass(frozen=True)
class Comment:
    """One comment line; `value` is the text after `#` (leading space included, as sops does)."""

    value: str


class Branch(list[tuple[Any, Any]]):
    """An ordered mapping with comment entries: [(key or Comment, value), ...]."""

    def keys(self) -> list[str]:
        return [key for key, _ in self if not isinstance(key, Comment)]


Scalar: TypeAlias = str | int | float | bool | bytes | datetime | None
# The comments in force where a leaf sits: one list per enclosing mapping, innermost last (see `walk`).
CommentStack = list[list[str]]
# Leaf visitor: (value, key path, comment stack) -> new value
LeafVisitor = Callable[[Any, list[str], CommentStack], Any]

LEAF_TYPES = (str, int, float, bool, bytes, datetime, Comment)


def walk(value: Any, path: list[str], visit: LeafVisitor, stack: CommentStack | None = None) -> Any:
    """Rebuild `value`, passing every leaf (comments included, nulls excluded) to `visit`.

    Lists do not add to the path: a list element's path is its parent key's, as in sops. An
    encrypted comment inside a list stays a plain `ENC[…]` element, which is what sops writes.

    The comment stack mirrors sops' walk, which `*_comment_regex` rules depend on: each mapping and
    each list opens a level; a comment joins the current level before it is visited itself; the
    level is cleared after each non-comment entry (checked against sops 3.11 in the interop tests).
    """
    stack = [[]] if stack is None else stack
    if isinstance(value, Branch):
        level: list[str] = []
        inner = [*stack, level]
        out = Branch()
        for key, item in value:
            if isinstance(key, Comment):
                level.append(key.value)
                # an encrypted comment comes back as text; in a mapping it stays a comment line
                new_key = visit(key, path, inner)
                out.append((new_key if isinstance(new_key, Comment) else Comment(str(new_key)), None))
            else:
                out.append((key, walk(item, [*path, key], visit, inner)))
                level.clear()
        return out
    if isinstance(value, list):
        level = []
        inner = [*stack, level]
        items = []
        for item in value:
            if isinstance(item, Comment):
                level.append(item.value)
            items.append(walk(item, path, visit, inner))
            if not isinstance(item, Comment):
                level.clear()
        return items
    if value is None:
        return None
    if isinstance(value, LEAF_TYPES):
        return visit(value, path, stack)
    raise TypeError(f"unsupported value type {type(value).__name__}")


def to_plain(value: Any) -> Any:
    """The tree as plain dicts/lists without comments (for the model and for JSON-ish checks)."""
    if isinstance(value, Branch):
        return {key: to_plain(item) for key, item in value if not isinstance(key, Comment)}
    if isinstance(value, list):
        return [to_plain(item) for item in value if not isinstance(item, Comment)]
    return value
