"""An OpenAI chat request as an Anthropic Messages request."""

from __future__ import annotations

from typing import Any

from seance.gateway.errors import BadRequest
from seance.gateway.formats import openai as shapes
from seance.gateway.providers.base import Call

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; LiteLLM sends this when the client did not
JSON_TOOL = "json_tool_call"  # response_format is honoured by forcing a tool with the schema
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}

SUPPORTED = frozenset(
    {
        "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop", "tools",
        "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort", "thinking",
        "user",
    }
)  # fmt: skip


def to_messages_request(call: Call, provider: str) -> dict[str, Any]:
    body = call.body
    shapes.check_params(call.body, SUPPORTED, provider, call.drop_params)
    system, messages = convert_messages(body.get("messages"))
    request: dict[str, Any] = {"model": call.target.model, "messages": messages}
    if system:
        request["system"] = system
    request["max_tokens"] = shapes.max_tokens(body) or DEFAULT_MAX_TOKENS
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            request[key] = body[key]
    if stops := shapes.stop_list(body.get("stop")):
        request["stop_sequences"] = stops
    if call.stream:
        request["stream"] = True
    if isinstance(body.get("user"), str):
        request["metadata"] = {"user_id": body["user"]}
    if isinstance(body.get("thinking"), dict):
        request["thinking"] = body["thinking"]
    elif body.get("reasoning_effort") in THINKING_BUDGETS:
        request["thinking"] = {"type": "enabled", "budget_tokens": THINKING_BUDGETS[body["reasoning_effort"]]}
    tools = [convert_tool(t) for t in body.get("tools") or []]
    tool_choice = convert_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    tool_choice = json_format(body.get("response_format"), request, tools, tool_choice)
    if tools:
        request["tools"] = tools
    if tool_choice is not None and tools:  # Anthropic takes a tool_choice only beside tools
        request["tool_choice"] = tool_choice
    budget = (request.get("thinking") or {}).get("budget_tokens")
    if isinstance(budget, int) and shapes.max_tokens(body) is None:
        # the answer must have room after the thinking; only our own default is ours to raise
        request["max_tokens"] = max(request["max_tokens"], budget + DEFAULT_MAX_TOKENS)
    return request


def json_format(
    response_format: Any, request: dict[str, Any], tools: list[dict[str, Any]], tool_choice: dict[str, Any] | None
) -> dict[str, Any] | None:
    """response_format as Anthropic has it (https://docs.claude.com/en/docs/build-with-claude/structured-outputs).

    With thinking on, Anthropic refuses a forced tool: a json_schema goes as its structured-output
    format (`output_config.format`); json_object (no schema to give) as the JSON tool offered, not
    forced. Beside the client's own tools the JSON tool is offered too, and the client's
    tool_choice and parallel_tool_calls stay as they were, so its tools can still be called.
    Otherwise the JSON tool is forced: every Claude model honours that. Returns the tool_choice.
    """
    if not isinstance(response_format, dict) or response_format.get("type") not in ("json_schema", "json_object"):
        return tool_choice
    schema = (response_format.get("json_schema") or {}).get("schema")
    thinking = (request.get("thinking") or {}).get("type") == "enabled"
    if thinking and response_format["type"] == "json_schema" and schema:
        request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        return tool_choice
    forced = not thinking and not tools
    tools.append({"name": JSON_TOOL, "description": "Respond with JSON", "input_schema": schema or {"type": "object"}})
    if forced:
        return {**(tool_choice or {}), "type": "tool", "name": JSON_TOOL}
    return tool_choice


def convert_messages(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for position, message in shapes.messages_of(raw):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(content_blocks(message.get("content"), position))
            continue
        if role == "user":
            blocks = content_blocks(message.get("content"), position)
        elif role == "assistant":
            blocks = assistant_blocks(message, position)
        elif role in ("tool", "function"):
            role = "user"
            blocks = [tool_result(message, position)]
        else:
            raise BadRequest(f"messages[{position}].role {role!r} is not supported", param="messages")
        if not blocks:
            continue
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)  # Anthropic wants user and assistant to alternate
        else:
            messages.append({"role": role, "content": blocks})
    return system, messages


def content_blocks(content: Any, position: int) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise BadRequest(f"messages[{position}].content must be a string or a list", param="messages")
    blocks = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            block: dict[str, Any] = {"type": "text", "text": part.get("text", "")}
        elif kind == "image_url":
            url = shapes.image_url(part)
            data = shapes.parse_data_url(url)
            source = {"type": "base64", "media_type": data[0], "data": data[1]} if data else {"type": "url", "url": url}
            block = {"type": "image", "source": source}
        else:
            raise shapes.unsupported_part(kind, position)
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def assistant_blocks(message: dict[str, Any], position: int) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        b for b in message.get("thinking_blocks") or [] if isinstance(b, dict) and (b.get("signature") or b.get("data"))
    ]
    blocks += [b for b in content_blocks(message.get("content"), position) if b.get("text") != ""]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": shapes.tool_arguments(function.get("arguments")),
            }
        )
    return blocks


def tool_result(message: dict[str, Any], position: int) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str):
        raise BadRequest(f"messages[{position}].tool_call_id is required for role tool", param="messages")
    content = message.get("content")
    blocks = content_blocks(content, position) if content else [{"type": "text", "text": ""}]
    return {"type": "tool_result", "tool_use_id": tool_call_id, "content": blocks}


def convert_tool(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if tool.get("type") != "function" or not isinstance(function, dict) or not function.get("name"):
        raise BadRequest("tools must be function tools with a name", param="tools")
    converted: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        converted["description"] = function["description"]
    if "cache_control" in tool:
        converted["cache_control"] = tool["cache_control"]
    return converted


def convert_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    converted: dict[str, Any] | None
    if choice is None:
        converted = None
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "required":
        converted = {"type": "any"}
    elif choice == "none":
        converted = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        converted = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        raise BadRequest("tool_choice must be auto, required, none or a function", param="tool_choice")
    if parallel is False:
        converted = {**(converted or {"type": "auto"}), "disable_parallel_tool_use": True}
    return converted
