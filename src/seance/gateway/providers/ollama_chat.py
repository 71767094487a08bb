"""Ollama's native API: /api/chat, /api/generate (completions) and /api/embed, streamed as NDJSON.
`ollama_chat/<model>` as LiteLLM names it (`ollama/` is the OpenAI-compatible /v1 family)."""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar

import orjson

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.sse import DONE
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
from seance.gateway.providers.openai_compat import OLLAMA_CONTEXT_WINDOW

OPTIONS = {
    "temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed",
    "max_tokens": "num_predict", "max_completion_tokens": "num_predict",
    "frequency_penalty": "frequency_penalty", "presence_penalty": "presence_penalty",
}  # fmt: skip
SUPPORTED = frozenset(
    {*OPTIONS, "stop", "tools", "tool_choice", "response_format", "reasoning_effort", "thinking", "user"}
)
ROLES = ("system", "developer", "user", "assistant", "tool")
PATHS = {"chat": "/api/chat", "completion": "/api/generate", "embedding": "/api/embed"}


class OllamaChat(Adapter):
    name = "ollama_chat"
    catalogue = ("ollama",)
    chat_params = SUPPORTED
    error_kinds = (OLLAMA_CONTEXT_WINDOW,)
    operations: ClassVar[frozenset[Operation]] = frozenset({"chat", "completion", "embedding"})
    key_env = ("OLLAMA_API_KEY",)
    base_env = ("OLLAMA_API_BASE",)
    default_base = "http://localhost:11434"
    key_required = False

    def normalize_base(self, base: str) -> str:
        return base.rstrip("/").removesuffix("/v1").removesuffix("/api")

    def _build(self, call: Call) -> UpstreamRequest:
        if call.op not in PATHS:
            raise BadRequest(f"ollama_chat does not offer the {call.op} operation")
        headers = json_headers(call.target.api_key)
        body: dict[str, Any] = {"model": call.target.model}
        if call.op == "embedding":
            shapes.check_params(call.body, {"dimensions", "user", "truncate"}, self.name, call.drop_params)
            shapes.embedding_inputs(call.body)  # validates
            body["input"] = call.body["input"]
            for key in ("dimensions", "truncate"):
                if call.body.get(key) is not None:
                    body[key] = call.body[key]
        else:
            body.update(generation_body(call))
        url = call.target.api_base + PATHS[call.op]
        return UpstreamRequest("POST", url, headers, orjson.dumps(body), call.stream)

    def _parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        if call.op == "embedding":
            data = shapes.loads(body, self.name)
            usage = Usage(int(data.get("prompt_eval_count") or 0), 0)
            return Reply(shapes.embeddings(call.body, data.get("embeddings") or [], call.target.model, usage), usage)
        # One JSON object; or NDJSON when a server streams anyway (its default): fold the lines.
        state = Accumulated(call)
        for line in body.splitlines():
            if line.strip():
                state.add(shapes.loads(line, self.name))
        usage = state.usage()
        if call.op == "completion":
            reply = shapes.text_completion(
                id=state.id, model=state.model, text="".join(state.texts), finish_reason=state.finish(), usage=usage
            )
        else:
            reply = shapes.chat_completion(
                id=state.id, model=state.model, content="".join(state.texts) or (None if state.tool_calls else ""),
                finish_reason=state.finish(), usage=usage, tool_calls=state.tool_calls,
                reasoning="".join(state.thinking) or None,
            )  # fmt: skip
        return Reply(reply, usage)

    def stream(self, call: Call) -> StreamTranslator:
        return NDJSONStream(call)


def generation_body(call: Call) -> dict[str, Any]:
    body = call.body
    supported = SUPPORTED | ({"suffix", "echo"} if call.op == "completion" else set())
    shapes.check_params(call.body, supported, "ollama_chat", call.drop_params)
    out: dict[str, Any] = {}
    if call.op == "chat":
        out["messages"] = convert_messages(body.get("messages"))
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string", param="prompt")
        out["prompt"] = prompt
        if body.get("suffix"):
            out["suffix"] = body["suffix"]
    out["stream"] = call.stream
    options = {name: body[key] for key, name in OPTIONS.items() if body.get(key) is not None}
    if stops := shapes.stop_list(body.get("stop")):
        options["stop"] = stops
    if options:
        out["options"] = options
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_object":
        out["format"] = "json"
    elif isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        out["format"] = (response_format.get("json_schema") or {}).get("schema") or "json"
    if body.get("tools") and body.get("tool_choice") != "none":
        out["tools"] = body["tools"]
    if body.get("reasoning_effort") is not None:
        out["think"] = body["reasoning_effort"] != "none"
    elif isinstance(body.get("thinking"), dict):  # Ollama's switch has no budget
        out["think"] = body["thinking"].get("type") == "enabled"
    return out


def convert_messages(raw: Any) -> list[dict[str, Any]]:
    out = []
    names: dict[str, str] = {}  # tool call id -> function name: Ollama labels tool results by name
    for position, message in shapes.messages_of(raw):
        if message.get("role") not in ROLES:
            raise BadRequest(f"messages[{position}] needs a role of system, user, assistant or tool", param="messages")
        role = "system" if message["role"] == "developer" else message["role"]
        content = message.get("content")
        converted: dict[str, Any] = {"role": role, "content": shapes.text_of(content)}
        if isinstance(content, list):
            images = [image(p, position) for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
            if images:
                converted["images"] = images
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            names[str(call.get("id"))] = function.get("name", "")
            calls.append({"function": {"name": function.get("name", ""),
                                       "arguments": shapes.tool_arguments(function.get("arguments"))}})  # fmt: skip
        if calls:
            converted["tool_calls"] = calls
        if role == "tool" and str(message.get("tool_call_id")) in names:
            converted["tool_name"] = names[str(message.get("tool_call_id"))]
        if role == "assistant" and message.get("reasoning_content"):
            converted["thinking"] = message["reasoning_content"]
        out.append(converted)
    return out


def image(part: dict[str, Any], position: int) -> str:
    data = shapes.parse_data_url(shapes.image_url(part))
    if data is None:
        raise BadRequest(f"messages[{position}]: Ollama takes images as base64 data URLs only", param="messages")
    return data[1]


class Accumulated:
    """The lines of one Ollama answer added up."""

    def __init__(self, call: Call) -> None:
        self.id = shapes.new_id("chatcmpl-" if call.op == "chat" else "cmpl-")
        self.model = call.target.model
        self.texts: list[str] = []
        self.thinking: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.done_reason: str | None = None
        self.done = False
        self.counts = (0, 0)

    def add(self, line: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
        """Records a line; returns its (text, thinking, new tool calls)."""
        if line.get("error"):
            raise UpstreamError(f"ollama_chat: {line['error']}")
        message = line.get("message") or {}
        text = message.get("content") if "message" in line else line.get("response")
        thinking = message.get("thinking") or line.get("thinking") or ""
        calls = []
        for raw in message.get("tool_calls") or []:
            function = raw.get("function") or {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = orjson.dumps(arguments or {}).decode()
            calls.append(
                shapes.tool_call(raw.get("id") or "call_" + secrets.token_hex(12), function.get("name", ""), arguments)
            )
        self.texts.append(text or "")
        self.thinking.append(thinking)
        self.tool_calls += calls
        if line.get("done"):
            self.done = True
            self.done_reason = line.get("done_reason")
            self.counts = (int(line.get("prompt_eval_count") or 0), int(line.get("eval_count") or 0))
        return text or "", thinking, calls

    def finish(self) -> str:
        if self.tool_calls:
            return "tool_calls"
        return "length" if self.done_reason == "length" else "stop"

    def usage(self) -> Usage:
        return Usage(*self.counts)


class NDJSONStream(TranslatingStream):
    def __init__(self, call: Call) -> None:
        self.call = call
        self.state = Accumulated(call)
        self.writer = shapes.ChunkWriter(
            call.target.model, include_usage=shapes.include_usage(call.body), id=self.state.id
        )
        self.buffer = b""

    def _feed(self, data: bytes, out: bytearray) -> None:
        lines = (self.buffer + data).split(b"\n")
        self.buffer = lines.pop()
        for line in lines:
            if line.strip():
                out += self._line(line)

    def _line(self, raw: bytes) -> bytes:
        text, thinking, calls = self.state.add(shapes.loads(raw, "ollama_chat"))
        if self.call.op == "completion":
            out = self._text_chunk(text, None) if text else b""
            if self.state.done:
                out += self._text_chunk("", self.state.finish())
            return out
        out = self.writer.reasoning(thinking) + self.writer.text(text)
        first = len(self.state.tool_calls) - len(calls)
        for index, call in enumerate(calls, start=first):
            function = call["function"]
            out += self.writer.tool_start(index, call["id"], function["name"], function["arguments"])
        if self.state.done:
            out += self.writer.start() + self.writer.finish(self.state.finish())
        return out

    def _text_chunk(self, text: str, finish: str | None, usage: dict[str, Any] | None = None) -> bytes:
        choices = [{"index": 0, "text": text, "finish_reason": finish}] if usage is None else []
        chunk: dict[str, Any] = {
            "id": self.state.id,
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.state.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def _close(self) -> bytes:
        if self.buffer.strip():
            tail = self._line(self.buffer)
            self.buffer = b""
        else:
            tail = b""
        if not self.state.done:
            raise UpstreamError("ollama_chat: the stream ended before done")
        self.usage = self.state.usage()
        if self.call.op == "completion":
            usage = shapes.usage_dict(self.usage) if shapes.include_usage(self.call.body) else None
            final = self._text_chunk("", None, usage) if usage else b""
            return tail + final + DONE
        return tail + self.writer.end(self.usage)
