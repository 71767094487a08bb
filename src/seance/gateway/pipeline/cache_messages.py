"""Anthropic's Messages answers for the response cache: a captured event stream into the answer it
amounts to, and a stored answer back into events (cache_answers.py does the same for OpenAI's).

    message_start, content_block_start/_delta/_stop per block, message_delta, message_stop

A stream is kept only when this can rebuild every block of it (text, tool_use and server_tool_use,
thinking with its signature, redacted_thinking) and it ended with message_stop; anything else
(an error event, a block or delta of a kind added later) is served once and not stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

BLOCKS = frozenset({"text", "tool_use", "server_tool_use", "thinking", "redacted_thinking"})
TOOLS = frozenset({"tool_use", "server_tool_use"})
# delta type -> the block field it adds to
DELTAS = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature",
          "input_json_delta": "partial_json"}  # fmt: skip


def assemble(events: Sequence[bytes]) -> bytes | None:
    """The Messages answer of a complete event stream (the events' data), or None."""
    try:
        parsed = [orjson.loads(data) for data in events]
    except orjson.JSONDecodeError:
        return None
    message: dict[str, Any] | None = None
    usage: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    parts: dict[int, dict[str, list[str]]] = {}  # a block's deltas, by the field they add to
    ended = False
    for event in parsed:
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = dict(event["message"])
            usage = dict(message.get("usage") or {})
        elif kind == "content_block_start" and isinstance(block := event.get("content_block"), dict):
            if block.get("type") not in BLOCKS:
                return None
            blocks[event.get("index", 0)] = dict(block)
            parts[event.get("index", 0)] = {}
        elif kind == "content_block_delta" and isinstance(delta := event.get("delta"), dict):
            into = DELTAS.get(str(delta.get("type")))
            index = event.get("index", 0)
            if into is None or index not in parts or not isinstance(delta.get(into), str):
                return None
            parts[index].setdefault(into, []).append(delta[into])
        elif kind == "message_delta":
            message = message if message is not None else {}
            message.update(event.get("delta") or {})
            usage.update(event.get("usage") or {})
        elif kind == "message_stop":
            ended = True
        elif kind not in ("content_block_stop", "ping"):
            return None  # an error event, or a kind this does not know
    if message is None or not ended:
        return None
    content = []
    for index in sorted(blocks):
        block, added = blocks[index], parts[index]
        if block["type"] in TOOLS:
            text = "".join(added.get("partial_json", []))
            try:
                block["input"] = orjson.loads(text) if text else block.get("input", {})
            except orjson.JSONDecodeError:
                return None
        for field in ("text", "thinking", "signature"):
            if field in added:
                block[field] = block.get(field, "") + "".join(added[field])
        content.append(block)
    return orjson.dumps({**message, "content": content, "usage": usage})


def replay(body: bytes) -> bytes | None:
    """A stored Messages answer as the event stream a streaming request gets, or None when it is
    not one this can replay."""
    try:
        answer = orjson.loads(body)
        content, usage = answer["content"], answer.get("usage") or {}
        start = {**answer, "content": [], "stop_reason": None, "stop_sequence": None,
                 "usage": {**usage, "output_tokens": 0}}  # fmt: skip
        out = [_event("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(content):
            out += _block(index, block)
        delta = {"stop_reason": answer.get("stop_reason"), "stop_sequence": answer.get("stop_sequence")}
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
        return None
    out.append(_event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    out.append(_event("message_stop", {"type": "message_stop"}))
    return b"".join(out)


def _block(index: int, block: dict[str, Any]) -> list[bytes]:
    kind = block["type"]
    if kind not in BLOCKS or block.get("citations"):  # (citations have deltas of their own: not rebuilt)
        raise ValueError(kind)
    deltas: list[dict[str, Any]] = []
    if kind == "text":
        first = {**block, "text": ""}
        deltas.append({"type": "text_delta", "text": block["text"]})
    elif kind in TOOLS:
        first = {**block, "input": {}}
        deltas.append({"type": "input_json_delta", "partial_json": orjson.dumps(block["input"]).decode()})
    elif kind == "thinking":
        first = {**block, "thinking": "", "signature": ""}
        deltas.append({"type": "thinking_delta", "thinking": block["thinking"]})
        deltas.append({"type": "signature_delta", "signature": block.get("signature", "")})
    else:  # redacted_thinking: whole at its start
        first = block
    events = [_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": first})]
    events += [
        _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
        for delta in deltas
    ]
    events.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: %b\ndata: %b\n\n" % (name.encode(), orjson.dumps(data))
