"""Cohere's v2 API: Chat (messages, tools, documents and citations, streamed as named events) and
Embed. `cohere/<model>` as LiteLLM names it."""

from __future__ import annotations

from typing import Any, ClassVar

import orjson

from seance.gateway.errors import CONTEXT_WINDOW, BadRequest, UpstreamError
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.sse import EventSplitter
from seance.gateway.providers.base import (
    Adapter,
    Call,
    FollowUp,
    Operation,
    Reply,
    StreamTranslator,
    TranslatingStream,
    UpstreamRequest,
    Usage,
    json_headers,
)
from seance.gateway.providers.completion import completions_through_chat

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "stop",
    "TIMEOUT": "stop",
}
# OpenAI name -> Cohere name; everything else is refused or dropped (drop_params)
RENAMED = {
    "temperature": "temperature", "max_tokens": "max_tokens", "max_completion_tokens": "max_tokens",
    "seed": "seed", "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty",
    "top_p": "p", "top_k": "k", "logprobs": "logprobs", "documents": "documents", "safety_mode": "safety_mode",
}  # fmt: skip
SUPPORTED = frozenset({*RENAMED, "stop", "tools", "tool_choice", "response_format", "thinking", "user"})
EMBED_SUPPORTED = frozenset({"dimensions", "input_type", "user"})


@completions_through_chat
class Cohere(Adapter):
    name = "cohere"
    catalogue = ("cohere_chat", "cohere")
    chat_params = SUPPORTED
    # "too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 4200"
    error_kinds = (("too many tokens", CONTEXT_WINDOW), ("maximum context length", CONTEXT_WINDOW))
    operations: ClassVar[frozenset[Operation]] = frozenset({"chat", "embedding"})
    key_env = ("COHERE_API_KEY", "CO_API_KEY")
    base_env = ("COHERE_API_BASE",)
    default_base = "https://api.cohere.com"
    model_prefixes = ("command-", "embed-", "c4ai-")

    def normalize_base(self, base: str) -> str:
        """The host root, from it or from LiteLLM's form (the full `…/v2/chat` or `…/v1/chat` URL)."""
        base = base.rstrip("/")
        for endpoint in ("/chat", "/embed"):
            base = base.removesuffix(endpoint)
        return base.removesuffix("/v2").removesuffix("/v1")

    def _build(self, call: Call) -> UpstreamRequest:
        headers = json_headers(call.target.api_key)
        if call.op == "embedding":
            url, body = call.target.api_base + "/v2/embed", embed_request(call)
        elif call.op == "chat":
            url, body = call.target.api_base + "/v2/chat", chat_request(call)
        else:
            raise BadRequest(f"cohere does not offer the {call.op} operation")
        return UpstreamRequest("POST", url, headers, orjson.dumps(body), call.stream)

    def _parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        data = shapes.loads(body, self.name)
        if not isinstance(data, dict):
            raise UpstreamError("cohere: answered with an unexpected body")
        if call.op == "embedding":
            vectors = (data.get("embeddings") or {}).get("float")
            if not isinstance(vectors, list):
                raise UpstreamError("cohere: the answer holds no float embeddings")
            billed = (data.get("meta") or {}).get("billed_units") or {}
            usage = Usage(int(billed.get("input_tokens") or 0), 0)
            return Reply(shapes.embeddings(call.body, vectors, call.target.model, usage), usage)
        message = data.get("message") or {}
        texts, thinking = [], []
        for block in message.get("content") or []:
            if block.get("type") == "text":
                texts.append(block.get("text", ""))
            elif block.get("type") == "thinking":
                thinking.append(block.get("thinking", ""))
        tool_calls = [
            shapes.tool_call(c.get("id", ""), c["function"]["name"], c["function"].get("arguments") or "{}")
            for c in message.get("tool_calls") or []
        ]
        content = "".join(texts) or message.get("tool_plan") or None
        usage = read_usage(data.get("usage"))
        extra = {"citations": message["citations"]} if message.get("citations") else None
        return Reply(
            shapes.chat_completion(
                id=data.get("id") or shapes.new_id(), model=call.target.model, content=content,
                finish_reason=FINISH_REASONS.get(data.get("finish_reason", ""), "stop"), usage=usage,
                tool_calls=tool_calls, reasoning="".join(thinking) or None, extra_message=extra,
            ),
            usage,
        )  # fmt: skip

    def stream(self, call: Call) -> StreamTranslator:
        return CohereStream(call)


def read_usage(raw: Any) -> Usage:
    """Tokens the model processed (`tokens`); `billed_units` when that is all there is."""
    raw = raw if isinstance(raw, dict) else {}
    counts = raw.get("tokens") or raw.get("billed_units") or {}
    prompt = int(counts.get("input_tokens") or 0)
    cached = min(int(raw.get("cached_tokens") or 0), prompt)  # of the input tokens, priced apart
    return Usage(prompt, int(counts.get("output_tokens") or 0), cached)


def chat_request(call: Call) -> dict[str, Any]:
    body = call.body
    shapes.check_params(call.body, SUPPORTED, "cohere", call.drop_params)
    request: dict[str, Any] = {"model": call.target.model, "messages": convert_messages(body.get("messages"))}
    request["stream"] = call.stream
    for openai_name, cohere_name in RENAMED.items():
        if body.get(openai_name) is not None:
            request[cohere_name] = body[openai_name]
    if stops := shapes.stop_list(body.get("stop")):
        request["stop_sequences"] = stops
    thinking = body.get("thinking")
    if isinstance(thinking, dict):  # https://docs.cohere.com/reference/chat: {type, token_budget}
        request["thinking"] = {"type": "enabled" if thinking.get("type") == "enabled" else "disabled"}
        if isinstance(thinking.get("budget_tokens"), int) and thinking.get("type") == "enabled":
            request["thinking"]["token_budget"] = thinking["budget_tokens"]
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools:
        request["tools"] = tools
        if choice == "required":
            request["tool_choice"] = "REQUIRED"
        elif choice == "none":
            request["tool_choice"] = "NONE"
        elif isinstance(choice, dict):  # one named function: offer only it, and require a call
            name = (choice.get("function") or {}).get("name")
            request["tools"] = [t for t in tools if (t.get("function") or {}).get("name") == name]
            request["tool_choice"] = "REQUIRED"
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        converted: dict[str, Any] = {"type": "json_object"}
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            converted["json_schema"] = schema
        request["response_format"] = converted
    return request


def convert_messages(raw: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for position, message in shapes.messages_of(raw):
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": shapes.text_of(content)})
        elif role == "user":
            out.append({"role": "user", "content": user_content(content, position)})
        elif role == "assistant":
            converted: dict[str, Any] = {"role": "assistant"}
            text = shapes.text_of(content)
            if message.get("tool_calls"):
                converted["tool_calls"] = message["tool_calls"]
                if text:  # the text before a tool call is Cohere's tool plan (see parse)
                    converted["tool_plan"] = text
                    content = None
            if content is not None:
                converted["content"] = [{"type": "text", "text": text}]
            out.append(converted)
        elif role == "tool":
            out.append({"role": "tool", "tool_call_id": message.get("tool_call_id"), "content": content or ""})
        else:
            raise BadRequest(f"messages[{position}].role {role!r} is not supported", param="messages")
    return out


def user_content(content: Any, position: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise BadRequest(f"messages[{position}].content must be a string or a list", param="messages")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image: dict[str, Any] = {"url": shapes.image_url(part)}
            detail = part["image_url"].get("detail") if isinstance(part.get("image_url"), dict) else None
            if detail is not None:  # auto, low or high, as OpenAI's
                image["detail"] = detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise shapes.unsupported_part(kind, position)
    return parts


def embed_request(call: Call) -> dict[str, Any]:
    shapes.check_params(call.body, EMBED_SUPPORTED, "cohere", call.drop_params)
    request: dict[str, Any] = {
        "model": call.target.model,
        "input_type": call.body.get("input_type") or "search_document",
        "embedding_types": ["float"],
    }
    if call.body.get("dimensions") is not None:
        request["output_dimension"] = call.body["dimensions"]
    request["texts"] = shapes.embedding_inputs(call.body)
    return request


class CohereStream(TranslatingStream):
    def __init__(self, call: Call) -> None:
        self.decoder = EventSplitter()
        self.writer = shapes.ChunkWriter(call.target.model, include_usage=shapes.include_usage(call.body))
        self.tools = 0
        self.done = False

    def _feed(self, data: bytes, out: bytearray) -> None:
        for _, payload in self.decoder.feed(data):
            if payload and payload != b"[DONE]" and not self.done:
                out += self._event(shapes.loads(payload, "cohere"))

    def _event(self, event: dict[str, Any]) -> bytes:
        kind = event.get("type")
        message = (event.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            self.writer.id = event.get("id") or self.writer.id
            return self.writer.start()
        if kind in ("content-start", "content-delta"):
            content = message.get("content") or {}
            return self.writer.text(content.get("text") or "") + self.writer.reasoning(content.get("thinking") or "")
        if kind == "tool-plan-delta":
            return self.writer.text(message.get("tool_plan") or "")
        if kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            function = call.get("function") or {}
            self.tools += 1
            name = function.get("name", "")
            return self.writer.tool_start(self.tools - 1, call.get("id", ""), name, function.get("arguments") or "")
        if kind == "tool-call-delta":
            arguments = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments") or ""
            return self.writer.tool_arguments(self.tools - 1, arguments)
        if kind == "citation-start":
            return self.writer.delta({"citations": [message.get("citations")]})
        if kind == "message-end":
            delta = event.get("delta") or {}
            self.done = True
            self.usage = read_usage(delta.get("usage"))
            finish = FINISH_REASONS.get(delta.get("finish_reason", ""), "stop")
            return self.writer.start() + self.writer.finish(finish) + self.writer.end(self.usage)
        if kind == "error" or ("message" in event and kind is None):
            raise UpstreamError(f"cohere: {event.get('message') or event}")
        return b""

    def _close(self) -> bytes:
        if not self.done:
            raise UpstreamError("cohere: the stream ended before message-end")
        return b""
