"""Anthropic's Messages API: OpenAI chat translated both ways ("chat"), and the native
pass-through the /v1/messages front door uses ("messages"): body forwarded with only the model
swapped, answer and stream bytes returned as they came, usage read from them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from seance.gateway.errors import CONTENT_POLICY, CONTEXT_WINDOW, BadRequest, GatewayError, RateLimited, UpstreamError
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.anthropic import FINISH_REASONS, read_usage, usage_extra
from seance.gateway.formats.sse import EventSplitter
from seance.gateway.providers._anthropic_request import JSON_TOOL, SUPPORTED, to_messages_request
from seance.gateway.providers.base import (
    Adapter,
    Call,
    ErrorKinds,
    FollowUp,
    Operation,
    Reply,
    StreamTranslator,
    TranslatingStream,
    UpstreamRequest,
    Usage,
    error_kind,
    error_message,
)
from seance.gateway.providers.completion import completions_through_chat

API_VERSION = "2023-06-01"


@completions_through_chat
class Anthropic(Adapter):
    name = "anthropic"
    chat_params = SUPPORTED
    operations: ClassVar[frozenset[Operation]] = frozenset({"chat", "messages", "count_tokens"})
    key_env = ("ANTHROPIC_API_KEY",)
    base_env = ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL")
    default_base = "https://api.anthropic.com"
    model_prefixes = ("claude-",)

    def normalize_base(self, base: str) -> str:
        # Users configure both "https://api.anthropic.com" and ".../v1"; requests append /v1/messages.
        base = base.rstrip("/")
        return base.removesuffix("/v1")

    def headers(self, call: Call) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "anthropic-version": call.client_headers.get("anthropic-version") or API_VERSION,
        }
        if beta := call.client_headers.get("anthropic-beta"):
            headers["anthropic-beta"] = beta
        if call.target.api_key:
            headers["x-api-key"] = call.target.api_key
        return headers

    def _build(self, call: Call) -> UpstreamRequest:
        url = call.target.api_base + "/v1/messages"
        if call.op == "messages":
            same_model = call.body.get("model") == call.target.model
            body = call.raw if call.raw and same_model else orjson.dumps({**call.body, "model": call.target.model})
        elif call.op == "count_tokens":
            return self.count_tokens(call)
        elif call.op == "chat":
            request = to_messages_request(call, self.name)
            call.state["json_mode"] = any(tool["name"] == JSON_TOOL for tool in request.get("tools", ()))
            body = orjson.dumps(request)
        else:
            raise BadRequest(f"anthropic does not offer the {call.op} operation")
        return UpstreamRequest("POST", url, self.headers(call), body, call.stream)

    def count_tokens(self, call: Call) -> UpstreamRequest:
        """`POST /v1/messages/count_tokens` for the front door: a Messages body (op "messages"),
        the model swapped, the answer ({"input_tokens": n}) to be returned as it comes."""
        body = orjson.dumps({**call.body, "model": call.target.model})
        return UpstreamRequest("POST", call.target.api_base + "/v1/messages/count_tokens", self.headers(call), body)

    def _parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        try:
            message = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"anthropic: answered HTTP {status} with a body that is not JSON") from exc
        if not isinstance(message, dict) or message.get("type") == "error":
            raise self.error(call, 500, {}, body)
        if call.op == "count_tokens":
            return Reply(body)
        usage, cache = read_usage(message.get("usage"))
        if call.op == "messages":
            return Reply(body, usage)
        return Reply(self._completion(call, message, usage, cache), usage)

    def _completion(self, call: Call, message: dict[str, Any], usage: Usage, cache: dict[str, int]) -> bytes:
        texts, reasoning, blocks, tool_calls = [], [], [], []
        for block in message.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                texts.append(block.get("text", ""))
            elif kind == "tool_use" and call.state.get("json_mode") and block.get("name") == JSON_TOOL:
                texts.append(orjson.dumps(block.get("input", {})).decode())
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input", {})).decode()
                tool_calls.append(shapes.tool_call(block["id"], block["name"], arguments))
            elif kind == "thinking":
                reasoning.append(block.get("thinking", ""))
                blocks.append(block)
            elif kind == "redacted_thinking":
                blocks.append(block)
        finish = FINISH_REASONS.get(message.get("stop_reason") or "", "stop")
        if call.state.get("json_mode") and finish == "tool_calls" and not tool_calls:
            finish = "stop"
        return shapes.chat_completion(
            id=message.get("id") or shapes.new_id(),
            model=message.get("model") or call.target.model,
            content="".join(texts) if texts or not tool_calls else None,
            finish_reason=finish,
            usage=usage,
            tool_calls=tool_calls,
            reasoning="".join(reasoning) or None,
            extra_message={"thinking_blocks": blocks} if blocks else None,
            usage_extra=usage_extra(cache),
        )

    def stream(self, call: Call) -> StreamTranslator:
        if call.op == "messages":
            return NativeStream()
        return MessagesToChunks(call)

    def error(self, call: Call, status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
        return map_error(status, headers, body)


# "prompt is too long: 219898 tokens > 200000 maximum"; "input length and `max_tokens` exceed
# context limit: 198981 + 21333 > 200000"; "Output blocked by content filtering policy"
ERROR_KINDS: ErrorKinds = (
    ("prompt is too long", CONTEXT_WINDOW),
    ("exceed context limit", CONTEXT_WINDOW),
    ("content filtering policy", CONTENT_POLICY),
)


def map_error(status: int, headers: Mapping[str, str], body: bytes) -> GatewayError:
    """Anthropic's {"type":"error","error":{"type","message"}} to the gateway's tree."""
    kind = ""
    try:
        data = orjson.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            kind = str(data["error"].get("type") or "")
    except orjson.JSONDecodeError:
        pass
    message = "anthropic: " + (error_message(body) or f"upstream answered HTTP {status}")
    retry = {k: v for k, v in headers.items() if k.lower() == "retry-after"}
    if kind == "overloaded_error" or status == 529:
        # 529 is Anthropic's own "overloaded": retryable, shown to clients as 503.
        err = UpstreamError(message, upstream_status=status, headers=retry, code="overloaded")
        err.status = 503
        return err
    if kind == "rate_limit_error" or status == 429:
        return RateLimited(message, headers=retry, code="rate_limit_exceeded")
    err = UpstreamError(message, upstream_status=status, headers=retry, code=kind or str(status))
    err.kind = error_kind(ERROR_KINDS, status, body)
    return err


class MessagesToChunks(TranslatingStream):
    """Anthropic's event stream to OpenAI chunks: text, tool_use input_json, thinking, usage."""

    def __init__(self, call: Call) -> None:
        self.decoder = EventSplitter()
        self.writer = shapes.ChunkWriter(call.target.model, include_usage=shapes.include_usage(call.body))
        self.json_mode = bool(call.state.get("json_mode"))
        self.blocks: dict[int, tuple[str, int]] = {}  # anthropic block index -> (kind, tool index)
        self.tools = 0
        self.raw_usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.done = False

    def _feed(self, data: bytes, out: bytearray) -> None:
        for name, payload in self.decoder.feed(data):
            if payload and name != b"ping":
                out += self._event(shapes.loads(payload, "anthropic"))

    def _event(self, event: dict[str, Any]) -> bytes:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.writer.id = message.get("id") or self.writer.id
            self.writer.model = message.get("model") or self.writer.model
            self.raw_usage.update(message.get("usage") or {})
            return self.writer.start()
        if kind == "content_block_start":
            return self._block_start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "message_delta":
            self.raw_usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            return b""
        if kind == "message_stop":
            return self._finish()
        if kind == "error":
            raise map_error(500, {}, orjson.dumps(event))
        return b""

    def _block_start(self, index: int, block: dict[str, Any]) -> bytes:
        kind = block.get("type", "")
        if kind == "tool_use" and not (self.json_mode and block.get("name") == JSON_TOOL):
            self.blocks[index] = ("tool_use", self.tools)
            self.tools += 1
            return self.writer.tool_start(self.tools - 1, block.get("id", ""), block.get("name", ""))
        self.blocks[index] = ("json" if kind == "tool_use" else kind, -1)
        if kind == "text":
            return self.writer.text(block.get("text", ""))
        if kind == "redacted_thinking":
            return self.writer.delta({"thinking_blocks": [block]})
        return b""

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        kind, tool = self.blocks.get(index, ("", -1))
        dtype = delta.get("type")
        if dtype == "text_delta":
            return self.writer.text(delta.get("text", ""))
        if dtype == "input_json_delta" and kind == "json":
            return self.writer.text(delta.get("partial_json", ""))
        if dtype == "input_json_delta":
            return self.writer.tool_arguments(tool, delta.get("partial_json", ""))
        if dtype == "thinking_delta":
            return self.writer.reasoning(delta.get("thinking", ""))
        if dtype == "signature_delta":
            block = {"type": "thinking", "thinking": "", "signature": delta.get("signature", "")}
            return self.writer.delta({"thinking_blocks": [block]})
        return b""

    def _finish(self) -> bytes:
        self.done = True
        finish = FINISH_REASONS.get(self.stop_reason or "", "stop")
        if self.json_mode and finish == "tool_calls" and self.tools == 0:
            finish = "stop"
        self.usage, cache = read_usage(self.raw_usage)
        return self.writer.start() + self.writer.finish(finish) + self.writer.end(self.usage, **usage_extra(cache))

    def _close(self) -> bytes:
        tail = bytearray()
        for name, payload in self.decoder.flush():  # a last event without its blank line
            if payload and name != b"ping":
                tail += self._event(shapes.loads(payload, "anthropic"))
        if not self.done:
            raise UpstreamError("anthropic: the stream ended before message_stop")
        return bytes(tail)


class NativeStream(StreamTranslator):
    """Anthropic's own events passed through untouched; usage read on the way."""

    def __init__(self) -> None:
        self.decoder = EventSplitter()
        self.raw_usage: dict[str, Any] = {}
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        # Most pieces are whole content_block events: nothing to read in them, so skip the split.
        whole = not self.decoder.buffer and data.endswith(b"\n\n")
        if whole and b"event: message_" not in data and b"event: error" not in data:
            return data
        self._read(self.decoder.feed(data))
        return data

    def _read(self, events: list[tuple[bytes | None, bytes]]) -> None:
        for name, raw in events:
            if name in (b"message_start", b"message_delta"):
                payload = shapes.loads(raw, "anthropic")
                usage = (payload.get("message") or payload).get("usage") or {}
                self.raw_usage.update({k: v for k, v in usage.items() if v is not None})
            elif name in (b"message_stop", b"error"):
                self.ended = True  # an error event already reached the client in Anthropic's format

    def close(self) -> bytes:
        self._read(self.decoder.flush())
        self.usage = read_usage(self.raw_usage)[0] if self.raw_usage else None
        if not self.ended:
            raise UpstreamError("anthropic: the stream ended before message_stop")
        return b""
