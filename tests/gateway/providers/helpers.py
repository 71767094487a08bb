"""Helpers for adapter unit tests: calls, odd stream splits, and reading OpenAI chunk streams back
the way the openai SDK accumulates them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson
from tests.sse_reference import SSEDecoder

from seance.gateway.providers.base import Call, Operation, StreamTranslator, Target

# the tool and question of ruby_llm's recorded function-calling conversations (Cohere, Gemini)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Gets current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {
                "latitude": {"type": "string", "description": "Latitude (e.g., 52.5200)"},
                "longitude": {"type": "string", "description": "Longitude (e.g., 13.4050)"},
            },
            "required": ["latitude", "longitude"],
            "additionalProperties": False,
        },
    },
}
BERLIN = "What's the weather in Berlin? (52.5200, 13.4050)"


def make_call(
    op: Operation,
    body: dict[str, Any],
    *,
    provider: str,
    model: str,
    api_base: str,
    api_key: str | None = "test-key",
    stream: bool | None = None,
    extra: dict[str, Any] | None = None,
    client_headers: dict[str, str] | None = None,
) -> Call:
    target = Target(provider, model, api_base, api_key, extra=extra or {})
    return Call(
        op=op,
        body=body,
        raw=orjson.dumps(body),
        stream=bool(body.get("stream")) if stream is None else stream,
        target=target,
        client_headers=client_headers or {},
    )


def splits(data: bytes, mode: str, seed: int = 7) -> Iterator[bytes]:
    """`data` cut into pieces: "whole", "bytes" (one byte each) or "random" (1-64 bytes)."""
    if mode == "whole":
        yield data
        return
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = 1 if mode == "bytes" else rng.randint(1, 64)
        yield data[pos : pos + size]
        pos += size


SPLITS = ("whole", "bytes", "random")


def run_stream(translator: StreamTranslator, data: bytes | list[bytes], mode: str = "whole") -> bytes:
    pieces = data if isinstance(data, list) else list(splits(data, mode))
    out = b"".join(translator.feed(piece) for piece in pieces)
    return out + translator.close()


def chunks_of(sse: bytes) -> list[dict[str, Any]]:
    """The JSON chunks of an OpenAI SSE stream; asserts it ends with [DONE]."""
    events = SSEDecoder().feed(sse)
    assert events and events[-1].data == "[DONE]", sse[-200:]
    return [orjson.loads(e.data) for e in events[:-1]]


def accumulate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client reassembles: content, reasoning, tool calls, finish reason and usage."""
    content, reasoning = "", ""
    tools: dict[int, dict[str, Any]] = {}
    finish, usage, roles = None, None, []
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            if "role" in delta:
                roles.append(delta["role"])
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            for call in delta.get("tool_calls") or []:
                slot = tools.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] = function.get("name") or slot["name"]
                slot["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {
        "content": content,
        "reasoning": reasoning,
        "tool_calls": [tools[i] for i in sorted(tools)],
        "finish_reason": finish,
        "usage": usage,
        "roles": roles,
    }
