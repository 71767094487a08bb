"""JSON text <-> document tree, written the way sops writes JSON (tab indent, Go escaping)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from seance.secrets.errors import SecretsError
from seance.secrets.gofmt import format_float_json, format_time
from seance.secrets.tree import Branch, Comment


def _pairs(pairs: list[tuple[str, Any]]) -> Branch:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise SecretsError(f"duplicate key '{key}'")
        seen.add(key)
    return Branch(pairs)


def load_json(text: str, where: str) -> list[Branch]:
    try:
        data = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as error:
        raise SecretsError(f"{where}: not valid JSON at line {error.lineno}: {error.msg}") from None
    except SecretsError as error:
        raise SecretsError(f"{where}: {error}") from None
    if not isinstance(data, Branch):
        raise SecretsError(f"{where}: the top level of a JSON document must be an object")
    return [data]


def dump_json(docs: list[Branch]) -> str:
    if len(docs) != 1:
        raise SecretsError("JSON holds exactly one document; use YAML for several")
    return _value(docs[0], 0) + "\n"


def _value(value: Any, depth: int) -> str:
    if isinstance(value, Branch):
        items = [(k, v) for k, v in value if not isinstance(k, Comment)]
        if not items:
            return "{}"
        inner = "\t" * (depth + 1)
        body = ",\n".join(f"{inner}{_string(k)}: {_value(v, depth + 1)}" for k, v in items)
        return "{\n" + body + "\n" + "\t" * depth + "}"
    if isinstance(value, list):
        items = [item for item in value if not isinstance(item, Comment)]
        if not items:
            return "[]"
        inner = "\t" * (depth + 1)
        return "[\n" + ",\n".join(inner + _value(v, depth + 1) for v in items) + "\n" + "\t" * depth + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        try:
            return format_float_json(value)
        except ValueError:
            raise SecretsError("JSON cannot hold NaN or infinity; use YAML") from None
    if isinstance(value, datetime):
        return _string(format_time(value))
    if isinstance(value, bytes):
        return _string(value.decode(errors="replace"))
    return _string(str(value))


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def _string(text: str) -> str:
    # Go's encoding/json: HTML-safe escapes for <, >, & and the JS line separators
    out = []
    for char in text:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif ord(char) < 0x20 or char in "<>&\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
