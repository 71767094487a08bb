"""Anthropic Messages ↔ OpenAI chat, for the /v1/messages front door before a non-Anthropic provider.

Pure functions: an Anthropic request becomes an OpenAI chat request, which the gateway sends to
any provider; the OpenAI answer becomes an Anthropic Message. Anthropic deployments never come
here: they pass through.
"""

from __future__ import annotations

from typing import Any

import orjson

from seance.gateway.errors import BadRequest, client_shape, upstream_shape
from seance.gateway.formats.anthropic import STOP_REASONS, message_id, usage_to_anthropic
from seance.gateway.formats.openai import loads


def _require(condition: bool, field: str, what: str) -> None:
    if not condition:
        raise BadRequest(f"{field}: {what}", param=field)


# --- request -----------------------------------------------------------------------------------


def to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat request."""
    with client_shape("messages"):
        return _to_openai_request(body)


def _to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    _require(isinstance(body.get("model"), str), "model", "a model name is required")
    max_tokens = body.get("max_tokens")
    _require(type(max_tokens) is int and max_tokens > 0, "max_tokens", "a positive integer is required")
    raw_messages: Any = body.get("messages")
    _require(isinstance(raw_messages, list) and bool(raw_messages), "messages", "a non-empty list is required")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else _texts(system, "system")
        messages.append({"role": "system", "content": text})
    for index, message in enumerate(raw_messages):
        messages.extend(_message(message, f"messages.{index}"))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages, "max_tokens": max_tokens}
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("stop_sequences"):
        _require(isinstance(body["stop_sequences"], list), "stop_sequences", "a list of strings is required")
        chat["stop"] = body["stop_sequences"]
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    # metadata.user_id is not passed on as OpenAI's `user`: Claude Code always sends one, and several
    # OpenAI-compatible providers refuse fields they do not know.
    if body.get("tools"):
        _require(isinstance(body["tools"], list), "tools", "a list is required")
        chat["tools"] = [_tool(tool, f"tools.{i}") for i, tool in enumerate(body["tools"])]
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"], chat)
    # Anthropic-style `thinking` and `top_k` as they came (LiteLLM's OpenAI-format extensions): a
    # provider that has a budget (Gemini, Cohere) gets it exactly; OpenAI-like ones get reasoning_effort.
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        chat["thinking"] = {"type": "enabled", "budget_tokens": int(thinking.get("budget_tokens") or 0)}
    return chat


def _texts(blocks: Any, field: str) -> str:
    _require(isinstance(blocks, list), field, "a string or a list of text blocks is required")
    parts = []
    for i, block in enumerate(blocks):
        _require(isinstance(block, dict) and block.get("type") == "text", f"{field}.{i}", "a text block is required")
        parts.append(str(block.get("text", "")))
    return "\n".join(parts)


def _message(message: Any, field: str) -> list[dict[str, Any]]:
    _require(isinstance(message, dict), field, "an object is required")
    role, content = message.get("role"), message.get("content")
    _require(role in ("user", "assistant"), f"{field}.role", "must be 'user' or 'assistant'")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    _require(isinstance(content, list), f"{field}.content", "a string or a list of content blocks is required")
    if role == "assistant":
        return [_assistant(content, field)]
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        where = f"{field}.content.{i}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            _require(isinstance(block.get("tool_use_id"), str), f"{where}.tool_use_id", "a string is required")
            result = block.get("content", "")
            text = result if isinstance(result, str) else _result_text(result, f"{where}.content")
            if block.get("is_error"):
                text = f"Error: {text}"
            tool_messages.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": text})
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, where)}})
        else:
            raise BadRequest(f"{where}.type: content block type {kind!r} is not supported here", param=where)
    out = tool_messages
    if parts:
        simple = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if simple else parts})
    return out


def _result_text(content: Any, field: str) -> str:
    _require(isinstance(content, list), field, "a string or a list of blocks is required")
    return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")


def _image_url(block: dict[str, Any], field: str) -> str:
    source: Any = block.get("source")
    _require(isinstance(source, dict), f"{field}.source", "an image source is required")
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url":
        return str(source.get("url", ""))
    raise BadRequest(f"{field}.source.type: must be 'base64' or 'url'", param=f"{field}.source.type")


def _assistant(content: list[Any], field: str) -> dict[str, Any]:
    texts: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            _require(isinstance(block.get("id"), str), f"{field}.content.{i}.id", "a string is required")
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": str(block.get("name", "")), "arguments": arguments}
            tool_calls.append({"id": block["id"], "type": "function", "function": function})
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        else:
            raise BadRequest(f"{field}.content.{i}.type: {kind!r} is not supported", param=f"{field}.content.{i}")
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking:
        message["thinking_blocks"] = thinking
    return message


def _tool(tool: Any, field: str) -> dict[str, Any]:
    _require(isinstance(tool, dict), field, "an object is required")
    _require(tool.get("type") in (None, "custom"), f"{field}.type", "only custom (function) tools are supported")
    _require(isinstance(tool.get("name"), str), f"{field}.name", "a string is required")
    function: dict[str, Any] = {
        "name": tool["name"],
        "parameters": tool.get("input_schema") or {"type": "object", "properties": {}},
    }
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    _require(isinstance(choice, dict), "tool_choice", "an object is required")
    kind = choice.get("type")
    if kind == "auto":
        chat["tool_choice"] = "auto"
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "none":
        chat["tool_choice"] = "none"
    elif kind == "tool":
        _require(isinstance(choice.get("name"), str), "tool_choice.name", "a string is required")
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise BadRequest("tool_choice.type: must be auto, any, tool or none", param="tool_choice.type")
    if choice.get("disable_parallel_tool_use") is True and chat.get("tools"):
        chat["parallel_tool_calls"] = False


# --- response ----------------------------------------------------------------------------------


def from_openai_response(body: bytes, model: str) -> bytes:
    """An OpenAI chat.completion as an Anthropic Message."""
    with upstream_shape("upstream"):
        return _from_openai_response(loads(body, "upstream"), model)


def _from_openai_response(data: dict[str, Any], model: str) -> bytes:
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    for block in message.get("thinking_blocks") or []:
        content.append(block)
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if not message.get("thinking_blocks") and isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        content.append(
            {"type": "tool_use", "id": call.get("id") or "", "name": function.get("name", ""),
             "input": _arguments(function.get("arguments"))}
        )  # fmt: skip
    stop_reason = STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn")
    if message.get("tool_calls"):
        stop_reason = "tool_use"
    return orjson.dumps(
        {
            "id": message_id(data.get("id")),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage_to_anthropic(data.get("usage")),
        }
    )


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return {"_raw": arguments}  # a model's broken JSON, kept visible rather than dropped
    return value if isinstance(value, dict) else {"value": value}
