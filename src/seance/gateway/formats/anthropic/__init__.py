"""Anthropic's Messages format, once: the tables and mappings that both directions share.

    messages.py  Anthropic request → OpenAI chat request; OpenAI answer → Anthropic Message (the
                 /v1/messages front door in front of any provider)
    stream.py    OpenAI chunks → Anthropic events (the same front door, streaming)

The Anthropic provider adapter (`providers/anthropic.py`) goes the other way (OpenAI chat → Anthropic
upstream and back) with the same tables.
"""

from __future__ import annotations

from typing import Any

import orjson

from seance.gateway.errors import GatewayError
from seance.gateway.formats.openai import Usage

# OpenAI finish_reason → Anthropic stop_reason
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Anthropic stop_reason → OpenAI finish_reason
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def event(name: str, data: dict[str, Any]) -> bytes:
    """One Anthropic SSE event; its data carries its own name as `type`, as Anthropic sends them."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"


def message_id(openai_id: Any) -> str:
    text = str(openai_id or "")
    return text if text.startswith("msg_") else "msg_" + (text.removeprefix("chatcmpl-") or "seance")


def usage_to_anthropic(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    written = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("prompt_tokens") or 0)
    return {
        "input_tokens": max(prompt - cached - written, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
    }


def read_usage(raw: Any) -> tuple[Usage, dict[str, int]]:
    """OpenAI usage from Anthropic's: cached and cache-written input count as prompt tokens."""
    raw = raw if isinstance(raw, dict) else {}
    cache = {
        "cache_read_input_tokens": int(raw.get("cache_read_input_tokens") or 0),
        "cache_creation_input_tokens": int(raw.get("cache_creation_input_tokens") or 0),
    }
    prompt = int(raw.get("input_tokens") or 0) + sum(cache.values())
    usage = Usage(
        prompt,
        int(raw.get("output_tokens") or 0),
        cached_tokens=cache["cache_read_input_tokens"],
        cache_creation_tokens=cache["cache_creation_input_tokens"],
    )
    return usage, cache


def usage_extra(cache: dict[str, int]) -> dict[str, Any]:
    return {"prompt_tokens_details": {"cached_tokens": cache["cache_read_input_tokens"]}, **cache}


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def _error(err: GatewayError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(err.status, "invalid_request_error" if err.status < 500 else "api_error")
    return {"type": "error", "error": {"type": kind, "message": err.message}}


def error_body(err: GatewayError) -> bytes:
    return orjson.dumps(_error(err))


def error_event(err: GatewayError) -> bytes:
    return b"event: error\ndata: " + error_body(err) + b"\n\n"
