"""Document trees -> YAML text laid out exactly as sops (Go yaml.v3, indent 4) writes it.

Output byte-equal to `sops decrypt` means diffs, reviews and tools see the same file whichever
implementation wrote it. The rules below mirror yaml.v3's encoder and its libyaml-derived emitter.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from seance.secrets.gofmt import format_float_yaml, format_time
from seance.secrets.tree import Branch, Comment

_INDENT = 4
_OLD_BOOLS = frozenset(
    ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"]
)
_RESOLVED = frozenset(
    ["true", "True", "TRUE", "false", "False", "FALSE", "", "~", "null", "Null", "NULL", "<<"]
    + [f"{sign}{dot_inf}" for sign in ("", "+", "-") for dot_inf in (".inf", ".Inf", ".INF")]
    + [".nan", ".NaN", ".NAN"]
)
_GO_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)$")
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{1,2}-\d{1,2}(?:[Tt]\d{1,2}:\d{1,2}:\d{1,2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
    r"| \d{1,2}:\d{1,2}:\d{1,2}(?:\.\d+)?)?$"
)
_ESCAPES = {
    "\0": "0",
    "\a": "a",
    "\b": "b",
    "\t": "t",
    "\n": "n",
    "\v": "v",
    "\f": "f",
    "\r": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\xa0": "_",
    "\u2028": "L",
    "\u2029": "P",
}


def dump_yaml(docs: list[Branch]) -> str:
    return "---\n".join("".join(line + "\n" for line in _mapping(doc, 0)) or "{}\n" for doc in docs)


def _child_indent(indent: int, in_sequence_item: bool) -> int:
    # yaml.v3: inside a sequence item just skip "- "; everything else aligns to the indent grid
    return indent + 2 if in_sequence_item else _INDENT * ((indent + _INDENT) // _INDENT)


def _mapping(branch: Branch, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in branch:
        if isinstance(key, Comment):
            lines.append(f"{pad}#{key.value}")
            continue
        text, literal = _string(key, simple_key="\n" not in key)
        if literal:  # a multi-line key cannot be a simple key: yaml.v3 writes "? |" then ": value"
            lines.extend(_entry(f"{pad}?", key, indent, False))
            lines.extend(_entry(f"{pad}:", value, indent, False))
            continue
        if key == "<<":  # a merge key, written the way sops (>= 3.9) keeps it
            text = "!!merge <<"
        lines.extend(_entry(f"{pad}{text}:", value, indent, False))
    return lines


def _entry(head: str, value: Any, indent: int, in_sequence_item: bool) -> list[str]:
    """`head` ("key:" or "-") followed by `value`, inline or as an indented block."""
    if isinstance(value, Branch) and value.keys():
        child = _child_indent(indent, in_sequence_item)
        return [head, *_mapping(value, child)]
    if isinstance(value, list) and any(not isinstance(item, Comment) for item in value):
        child = _child_indent(indent, in_sequence_item)
        return [head, *_sequence(value, child)]
    if isinstance(value, Branch | list):
        comments = [k for k, _ in value] if isinstance(value, Branch) else value
        pad = " " * _child_indent(indent, in_sequence_item)
        return [f"{head} {'{}' if isinstance(value, Branch) else '[]'}"] + [f"{pad}#{c.value}" for c in comments]
    text, literal = _scalar(value)
    if not literal:
        return [f"{head} {text}"]
    block_indent = " " * _child_indent(indent, in_sequence_item)
    return [f"{head} {_block_header(text)}"] + [block_indent + line if line else "" for line in _block_lines(text)]


def _sequence(items: list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, Comment):
            lines.append(f"{pad}#{item.value}")
            continue
        nested = (isinstance(item, Branch) and bool(item.keys())) or (
            isinstance(item, list) and any(not isinstance(x, Comment) for x in item)
        )
        if not nested:
            lines.extend(_entry(f"{pad}-", item, indent, True))
            continue
        inner = indent + 2
        body = _mapping(item, inner) if isinstance(item, Branch) else _sequence(item, inner)
        # leading comments cannot share the "- " line: keep them just above it
        while body and body[0].lstrip().startswith("#"):
            lines.append(pad + body.pop(0).lstrip())
        lines.append(f"{pad}- {body[0][inner:]}")
        lines.extend(body[1:])
    return lines


def _block_header(text: str) -> str:
    hint = str(_INDENT) if text[:1] in (" ", "\n") else ""
    if not text.endswith("\n"):
        chomp = "-"
    elif len(text) == 1 or text[-2] == "\n":
        chomp = "+"
    else:
        chomp = ""
    return f"|{hint}{chomp}"


def _block_lines(text: str) -> list[str]:
    body = text[:-1] if text.endswith("\n") else text
    return body.split("\n")


def _scalar(value: Any) -> tuple[str, bool]:
    """The scalar's text and whether it is a literal block (`|`)."""
    if value is None:
        return "null", False
    if isinstance(value, bool):
        return ("true" if value else "false"), False
    if isinstance(value, int):
        return str(value), False
    if isinstance(value, float):
        return format_float_yaml(value), False
    if isinstance(value, datetime):
        return format_time(value), False
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            import base64

            return "!!binary " + base64.b64encode(value).decode(), False
    return _string(str(value), simple_key=False)


def _resolves_to_non_string(text: str) -> bool:
    if text in _RESOLVED or text == "":
        return True
    if text[0] not in "+-.0123456789":
        return False
    plain = text.replace("_", "")
    return bool(
        _TIMESTAMP.fullmatch(text)
        or _GO_INT.fullmatch(plain)
        or _YAML_FLOAT.fullmatch(plain)
        or re.fullmatch(r"-?0[bB][01]+|-?0[oO][0-7]+", plain)
    )


_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")


def _string(text: str, *, simple_key: bool) -> tuple[str, bool]:
    if _resolves_to_non_string(text) or _BASE60.fullmatch(text) or text in _OLD_BOOLS:
        return _double_quoted(text), False
    if any(char in text for char in _UNICODE_BREAKS):
        # libyaml writes these raw inside single quotes or blocks, in a layout YAML 1.2 readers disagree
        # on; escaped double quotes read back the same everywhere (the one place we differ from sops)
        return _double_quoted(text), False
    plain_ok, single_ok, block_ok = _analyze(text)
    if "\n" in text and not simple_key:
        return (text, True) if block_ok else (_double_quoted(text), False)
    if plain_ok and "\n" not in text:
        return text, False
    if single_ok and "\n" not in text:
        return "'" + text.replace("'", "''") + "'", False
    return _double_quoted(text), False


def _printable(char: str) -> bool:
    code = ord(char)
    # libyaml's test works on UTF-8 bytes and so rejects everything beyond the BMP
    return (
        code == 0x0A or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


def _analyze(text: str) -> tuple[bool, bool, bool]:
    """(block plain allowed, single quoted allowed, literal block allowed), per libyaml's analysis."""
    indicators = special = line_breaks = False
    leading_space = text[0] in " \n"
    trailing_space = text[-1] == " "
    space_break = break_space = False
    if text.startswith(("---", "...")):
        indicators = True
    for index, char in enumerate(text):
        following = text[index + 1] if index + 1 < len(text) else ""
        followed_by_space = following in ("", " ", "\t", "\n", "\r")
        preceded_by_space = index == 0 or text[index - 1] in (" ", "\t", "\n", "\r")
        if index == 0:
            if char in "#,[]{}&*!|>'\"%@`" or (char in "?:-" and followed_by_space):
                indicators = True
        elif (char == ":" and followed_by_space) or (char == "#" and preceded_by_space):
            indicators = True
        if (not _printable(char) and char != "\t") or char == "\ufeff":
            special = True
        if char == "\n":
            line_breaks = True
            if index > 0 and text[index - 1] == " ":
                space_break = True
        elif char == " " and index > 0 and text[index - 1] == "\n":
            break_space = True
    plain = not (leading_space or trailing_space or indicators or line_breaks or special)
    # yaml.v3 lets a tab into a literal block but not into a plain or single-quoted scalar
    tab = "\t" in text
    plain = plain and not break_space and not space_break and not tab
    single = not (break_space or space_break or special or tab)
    block = not (trailing_space or space_break or special)
    return plain, single, block


def _double_quoted(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\\n\r' or char in _UNICODE_BREAKS or not _printable(char) or char == "\ufeff":
            if char in _ESCAPES:
                out.append("\\" + _ESCAPES[char])
                continue
            code = ord(char)
            out.append(f"\\x{code:02X}" if code <= 0xFF else f"\\u{code:04X}" if code <= 0xFFFF else f"\\U{code:08X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
