"""YAML text -> document trees (YAML 1.2 via ruamel.yaml), comments kept as sops keeps them.

ruamel gives us nodes with exact positions; comments are then recovered from the source lines and
placed the way sops (yaml.v3) places them: a comment line belongs before the next entry at its
indentation or deeper, else at the end of the enclosing block; a comment at the end of a line
belongs before the entry that starts on that line.
"""

from __future__ import annotations

import base64
import bisect
import math
import re
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import BaseResolver

from seance.secrets.errors import SecretsError
from seance.secrets.gofmt import parse_time
from seance.secrets.tree import Branch, Comment

_TAG = "tag:yaml.org,2002:"
_DOC_MARKER = re.compile(r"^---(\s|$)")
_TAGGED = re.compile(r"(&\S+\s+)?!")  # where a node starts with a tag (maybe after an anchor)
_TYPED = {"null": "a null", "bool": "a boolean", "int": "an integer", "float": "a number", "timestamp": "a timestamp"}


@dataclass
class _Slot:
    """Where one mapping entry or sequence element starts, and the comments to put around it."""

    line: int
    column: int
    parent: _Slot | None
    before: list[Comment] = field(default_factory=list)
    after: list[Comment] = field(default_factory=list)


def load_yaml(text: str, where: str) -> list[Branch]:
    """Every document of `text` as a Branch (an empty document is an empty Branch)."""
    yaml = YAML(typ="rt")
    try:
        nodes = list(yaml.compose_all(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise SecretsError(f"{where}: not valid YAML{line}: {error.problem or error.context}") from None
    except YAMLError as error:
        raise SecretsError(f"{where}: not valid YAML: {str(error).splitlines()[0]}") from None
    if not nodes:
        return [Branch()]
    lines = re.split(r"\r\n|\r|\n", text)  # YAML 1.2 line breaks only (str.splitlines knows more)
    bounds = _document_bounds(nodes, lines)
    return [
        _DocumentReader(node, lines, start, end, where, yaml.resolver).read()
        for node, (start, end) in zip(nodes, bounds, strict=True)
    ]


def _document_bounds(nodes: list[Node | None], lines: list[str]) -> list[tuple[int, int]]:
    """The line range of each document; comments between documents go to the earlier one."""
    starts = [0]
    for node in nodes[1:]:
        line = node.start_mark.line if node is not None else len(lines)
        while line > starts[-1] and not _DOC_MARKER.match(lines[min(line, len(lines) - 1)] if lines else ""):
            line -= 1
        starts.append(line)
    return [(start, end) for start, end in zip(starts, [*starts[1:], len(lines)], strict=True)]


class _DocumentReader:
    def __init__(
        self, root: Node | None, lines: list[str], start: int, end: int, where: str, resolver: BaseResolver
    ) -> None:
        self.root, self.lines, self.start, self.end, self.where = root, lines, start, end, where
        self.resolver = resolver
        self.slots: list[_Slot] = []
        self.slot_of: dict[int, _Slot] = {}  # id(node) of a key / element -> its slot
        self.covered: set[int] = set()  # lines inside multi-line scalars or flow collections
        self.line_ends: dict[int, int] = {}  # line -> column after the last node ending there
        self.seen: set[int] = set()

    def read(self) -> Branch:
        if self.root is None:
            return Branch()
        if not isinstance(self.root, MappingNode):
            raise SecretsError(f"{self.where}: the top level of a YAML document must be a mapping")
        self._index(self.root, None)
        self._place_comments()
        self.seen.clear()
        result = self._build(self.root)
        assert isinstance(result, Branch)
        return result

    # -- pass 1: positions -------------------------------------------------------------------
    def _note_extent(self, node: Node) -> None:
        start, end = node.start_mark, node.end_mark
        if end.line > start.line:
            self.covered.update(range(start.line + 1, end.line))
            if end.column > 0:
                self.covered.add(end.line)
        if end.column > 0:
            self.line_ends[end.line] = max(self.line_ends.get(end.line, 0), end.column)

    def _index(self, node: Node, parent: _Slot | None) -> None:
        if id(node) in self.seen:  # an alias: its comments were taken at the anchor
            return
        self.seen.add(id(node))
        if isinstance(node, ScalarNode) or getattr(node, "flow_style", False):
            self._note_extent(node)
        if isinstance(node, MappingNode):
            for key, value in node.value:
                self._note_extent(key)
                slot = self._add_slot(key, key.start_mark.column, parent)
                self._index(value, slot)
        elif isinstance(node, SequenceNode):
            for item in node.value:
                slot = self._add_slot(item, self._dash_column(item), parent)
                self._index(item, slot)

    def _add_slot(self, node: Node, column: int, parent: _Slot | None) -> _Slot:
        slot = _Slot(node.start_mark.line, column, parent)
        self.slots.append(slot)
        self.slot_of[id(node)] = slot
        return slot

    def _dash_column(self, item: Node) -> int:
        line = self.lines[item.start_mark.line] if item.start_mark.line < len(self.lines) else ""
        column: int = item.start_mark.column - 1
        while column >= 0 and line[column] == " ":
            column -= 1
        return column if column >= 0 and line[column] == "-" else int(item.start_mark.column)

    # -- pass 2: comments ----------------------------------------------------------------------
    def _place_comments(self) -> None:
        slot_lines = [slot.line for slot in self.slots]
        for number in range(self.start, min(self.end, len(self.lines))):
            if number in self.covered:
                continue
            text = self.lines[number].rstrip()
            stripped = text.lstrip()
            if stripped.startswith("#"):
                self._place_line_comment(Comment(stripped[1:]), number, len(text) - len(stripped), slot_lines)
            elif number in self.line_ends:
                rest = text[self.line_ends[number] :].lstrip()
                rest = rest[1:].lstrip() if rest.startswith(":") else rest
                if rest.startswith("#"):
                    self._place_end_comment(Comment(rest[1:]), number, slot_lines)

    def _place_line_comment(self, comment: Comment, line: int, column: int, slot_lines: list[int]) -> None:
        index = bisect.bisect_right(slot_lines, line)
        following = self.slots[index] if index < len(self.slots) else None
        if following is not None and following.column >= column:
            following.before.append(comment)
            return
        previous = self.slots[index - 1] if index > 0 else None
        while previous is not None and previous.column > column and previous.parent is not None:
            previous = previous.parent
        if previous is None:
            if following is not None:
                following.before.append(comment)
            return
        previous.after.append(comment)

    def _place_end_comment(self, comment: Comment, line: int, slot_lines: list[int]) -> None:
        index = bisect.bisect_right(slot_lines, line) - 1
        if index >= 0 and self.slots[index].line == line:
            self.slots[index].before.append(comment)
        else:
            self._place_line_comment(comment, line, 1 << 30, slot_lines)

    # -- pass 3: the tree ---------------------------------------------------------------------------
    def _build(self, node: Node) -> Any:
        first_visit = id(node) not in self.seen
        self.seen.add(id(node))
        if isinstance(node, MappingNode):
            branch = Branch()
            keys: set[str] = set()
            for key_node, value_node in node.value:
                slot = self.slot_of.get(id(key_node)) if first_visit else None
                key = self._key(key_node)
                if key in keys:
                    raise SecretsError(f"{self.where}: line {key_node.start_mark.line + 1}: duplicate key '{key}'")
                keys.add(key)
                branch.extend((c, None) for c in (slot.before if slot else []))
                branch.append((key, self._build(value_node)))
                branch.extend((c, None) for c in (slot.after if slot else []))
            return branch
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            for item in node.value:
                slot = self.slot_of.get(id(item)) if first_visit else None
                items.extend(slot.before if slot else [])
                items.append(self._build(item))
                items.extend(slot.after if slot else [])
            return items
        assert isinstance(node, ScalarNode)
        return self._scalar(node)

    def _key(self, node: Node) -> str:
        # yaml.v3 decodes these plain keys to non-strings, which sops refuses; everything else is text
        non_string = ("int", "float", "bool", "null", "timestamp")
        if isinstance(node, ScalarNode) and str(node.tag or "") not in [_TAG + t for t in non_string]:
            return _text(node)
        raise SecretsError(
            f"{self.where}: line {node.start_mark.line + 1}: only string keys are supported (quote the key)"
        )

    def _scalar(self, node: ScalarNode) -> Any:
        tag, text = str(node.tag or ""), _text(node)
        explicit = tag.removeprefix(_TAG) in _TYPED and self._tagged(node)
        if explicit:
            self._check_tagged(node, tag, text)
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return text.lower() == "true"
        try:
            if tag == _TAG + "int":
                return _parse_int(text)
            if tag == _TAG + "float":
                return _parse_float(text)
        except ValueError:  # ruamel's resolver is looser than int()/float() (say "0x_"): keep the text
            if explicit:  # ... but `!!int 0x_` is no integer, and sops refuses it
                raise self._not_a(node, tag) from None
            return text
        if tag == _TAG + "timestamp":
            parsed = parse_time(text)
            if parsed is None and explicit:
                raise self._not_a(node, tag)
            return parsed if parsed is not None else text
        if tag == _TAG + "binary":
            try:
                data = base64.b64decode("".join(text.split()), validate=True)
            except ValueError:
                line = node.start_mark.line + 1
                raise SecretsError(f"{self.where}: line {line}: !!binary value is not valid base64") from None
            try:
                return data.decode()
            except UnicodeDecodeError:
                return data
        return text

    def _tagged(self, node: ScalarNode) -> bool:
        """Whether the scalar carries its tag in the text (`!!int "12"`), rather than resolved from it."""
        mark = node.start_mark
        line = self.lines[mark.line] if mark.line < len(self.lines) else ""
        return _TAGGED.match(line, mark.column) is not None

    def _check_tagged(self, node: ScalarNode, tag: str, text: str) -> None:
        """An explicit !!null, !!bool, !!int, !!float or !!timestamp needs text that is one, as
        yaml.v3 (and so sops) decides it: `!!null "x"` or `!!bool "yes"` is an error, never a null
        or a false. (An integer is also a float, as in yaml.v3.)"""
        plain = text == text.strip() and "\n" not in text
        resolved = str(self.resolver.resolve(ScalarNode, text, (True, False))) if plain else _TAG + "str"
        if resolved != tag and not (tag == _TAG + "float" and resolved == _TAG + "int"):
            raise self._not_a(node, tag)

    def _not_a(self, node: ScalarNode, tag: str) -> SecretsError:
        # the value itself stays out of the message: it may be a secret
        name = tag.removeprefix(_TAG)
        line = node.start_mark.line + 1
        return SecretsError(f"{self.where}: line {line}: a value tagged !!{name} is not {_TYPED[name]}")


def _text(node: ScalarNode) -> str:
    """The scalar's value. ruamel's round-trip scanner marks each line fold of a folded (`>`) block
    with a BEL, for its own re-emitter; a BEL cannot occur literally in a block scalar, so every one
    there is such a mark and the value is the text without them."""
    text = str(node.value)
    return text.replace("\a", "") if node.style == ">" else text


def _parse_int(text: str) -> int | float:
    """An integer as yaml.v3 reads it: a leading 0 makes it octal (`017` is 15, as Go's
    strconv.ParseInt with base 0 reads it), and `08`, no octal, is the float 8."""
    plain = str(text).replace("_", "")
    sign = -1 if plain.startswith("-") else 1
    digits: str = plain.lstrip("+-")
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if digits.lower().startswith(prefix):
            return sign * int(str(digits[2:]), base)
    if len(digits) > 1 and digits.startswith("0"):
        return sign * int(digits, 8) if set(digits) <= set("01234567") else sign * float(digits)
    return sign * int(digits, 10)


def _parse_float(text: str) -> float:
    plain = text.replace("_", "").lower()
    if plain in (".nan",):
        return math.nan
    if plain.lstrip("+-") == ".inf":
        return -math.inf if plain.startswith("-") else math.inf
    return float(plain)
