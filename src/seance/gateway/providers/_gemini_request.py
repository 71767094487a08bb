"""An OpenAI chat request as a Gemini generateContent request."""

from __future__ import annotations

import mimetypes
from typing import Any

from seance.gateway.errors import BadRequest
from seance.gateway.formats import openai as shapes
from seance.gateway.providers.base import Call

# Gemini 3 wants each function call's thought signature back; it rides in the tool call id,
# as LiteLLM does, so OpenAI clients that echo ids give it back without knowing.
SIGNATURE_MARK = "__thought__"
THINKING_BUDGETS = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
SCHEMA_KEYS_GEMINI_REJECTS = frozenset({"additionalProperties", "$schema", "strict", "$id", "$defs", "definitions"})
# OpenAI name -> GenerationConfig name (https://ai.google.dev/api/generate-content#generationconfig)
GENERATION = {
    "temperature": "temperature", "top_p": "topP", "top_k": "topK", "seed": "seed",
    "presence_penalty": "presencePenalty", "frequency_penalty": "frequencyPenalty", "n": "candidateCount",
    "logprobs": "responseLogprobs", "top_logprobs": "logprobs",
}  # fmt: skip
# parallel_tool_calls: true is Gemini's own behaviour (asks nothing); false has no switch: refused
SUPPORTED = frozenset(
    {*GENERATION, "max_tokens", "max_completion_tokens", "stop", "tools", "tool_choice", "response_format",
     "reasoning_effort", "thinking", "safety_settings", "user"}
)  # fmt: skip


def to_generate_request(call: Call) -> dict[str, Any]:
    body = call.body
    shapes.check_params(call.body, SUPPORTED, "gemini", call.drop_params)
    system, contents = convert_messages(body.get("messages"))
    request: dict[str, Any] = {"contents": contents}
    if system:
        request["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    for openai_name, gemini_name in GENERATION.items():
        if body.get(openai_name) is not None:
            config[gemini_name] = body[openai_name]
    if (limit := shapes.max_tokens(body)) is not None:
        config["maxOutputTokens"] = limit
    if stops := shapes.stop_list(body.get("stop")):
        config["stopSequences"] = stops
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    effort = body.get("reasoning_effort")
    thinking = body.get("thinking")
    if isinstance(thinking, dict):  # Anthropic-style: the budget exactly as given
        enabled = thinking.get("type") == "enabled"
        budget = thinking.get("budget_tokens") if enabled else 0
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": enabled}
    elif effort in THINKING_BUDGETS:
        config["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[effort], "includeThoughts": effort != "none"}
    request["generationConfig"] = config
    if body.get("safety_settings"):
        request["safetySettings"] = body["safety_settings"]
    if body.get("tools"):
        request["tools"] = [{"functionDeclarations": [declaration(t) for t in body["tools"]]}]
    if (choice := body.get("tool_choice")) is not None:
        request["toolConfig"] = {"functionCallingConfig": calling_config(choice)}
    return request


def declaration(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise BadRequest("tools must be function tools with a name", param="tools")
    out: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters") and function["parameters"].get("properties"):
        out["parameters"] = clean_schema(function["parameters"])
    return out


def clean_schema(schema: Any) -> Any:
    """The JSON schema without the keywords Gemini's `parameters` refuses."""
    if isinstance(schema, dict):
        return {k: clean_schema(v) for k, v in schema.items() if k not in SCHEMA_KEYS_GEMINI_REJECTS}
    if isinstance(schema, list):
        return [clean_schema(v) for v in schema]
    return schema


def calling_config(choice: Any) -> dict[str, Any]:
    if choice in ("auto", "required", "none"):
        return {"mode": {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice]}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name", "")]}
    raise BadRequest("tool_choice must be auto, required, none or a function", param="tool_choice")


def convert_messages(raw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the functionResponse parts
    for position, message in shapes.messages_of(raw):
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(parts(message.get("content"), position))
            continue
        if role == "user":
            role, converted = "user", parts(message.get("content"), position)
        elif role == "assistant":
            role, converted = "model", model_parts(message, position, names)
        elif role == "tool":
            role, converted = "user", [function_response(message, position, names)]
        else:
            raise BadRequest(f"messages[{position}].role {role!r} is not supported", param="messages")
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(converted)
        elif converted:
            contents.append({"role": role, "parts": converted})
    return system, contents


def parts(content: Any, position: int) -> list[dict[str, Any]]:
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"messages[{position}].content must be a string or a list", param="messages")
    out = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            out.append({"text": part.get("text", "")})
        elif kind == "image_url":
            url = shapes.image_url(part)
            data = shapes.parse_data_url(url)
            if data:
                out.append({"inlineData": {"mimeType": data[0], "data": data[1]}})
            else:
                mime = mimetypes.guess_type(url)[0] or "image/jpeg"
                out.append({"fileData": {"mimeType": mime, "fileUri": url}})
        else:
            raise shapes.unsupported_part(kind, position)
    return out


def model_parts(message: dict[str, Any], position: int, names: dict[str, str]) -> list[dict[str, Any]]:
    out = parts(message.get("content"), position)
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        call_id = str(call.get("id") or "")
        names[call_id] = function.get("name", "")
        part: dict[str, Any] = {
            "functionCall": {"name": function.get("name", ""), "args": shapes.tool_arguments(function.get("arguments"))}
        }
        if SIGNATURE_MARK in call_id:
            part["thoughtSignature"] = call_id.split(SIGNATURE_MARK, 1)[1]
        out.append(part)
    return out


def function_response(message: dict[str, Any], position: int, names: dict[str, str]) -> dict[str, Any]:
    call_id = str(message.get("tool_call_id") or "")
    name = message.get("name") or names.get(call_id)
    if not name:
        raise BadRequest(
            f"messages[{position}]: tool_call_id {call_id!r} matches no earlier assistant tool call", param="messages"
        )
    content = message.get("content")
    if isinstance(content, list):
        content = [{"text": p.get("text", "")} for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return {"functionResponse": {"name": name, "response": {"name": name, "content": content}}}
