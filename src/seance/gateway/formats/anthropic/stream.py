"""OpenAI chat chunks → Anthropic Messages stream events, for the /v1/messages front door.

The sequence the anthropic SDK expects: message_start, then per content block content_block_start,
content_block_delta (text_delta, input_json_delta, thinking_delta, signature_delta) and
content_block_stop, then message_delta (stop_reason, usage) and message_stop.
"""

from __future__ import annotations

from typing import Any

import orjson

from seance.gateway.errors import GatewayError, UpstreamError, upstream_shape
from seance.gateway.formats.anthropic import STOP_REASONS, error_event, event, message_id, usage_to_anthropic
from seance.gateway.formats.sse import EventSplitter


class OpenAIToAnthropicStream:
    def __init__(self, model: str | None = None) -> None:
        self.decoder = EventSplitter()
        self.model = model
        self.started = False
        self.finished = False
        self.block: tuple[str, int] | None = None  # (kind, anthropic index) of the open block
        self.blocks = 0
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> anthropic block index
        self.stop_reason: str | None = None
        self.openai_usage: dict[str, Any] = {}

    def feed(self, data: bytes) -> bytes:
        with upstream_shape("upstream"):
            return self._feed(data)

    def _feed(self, data: bytes) -> bytes:
        out = bytearray()
        for name, payload in self.decoder.feed(data):
            if self.finished or not payload:
                continue
            if payload == b"[DONE]":
                out += self._end()
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError("the upstream stream sent an event that is not JSON") from exc
            if name == b"error" or (isinstance(chunk, dict) and "error" in chunk and not chunk.get("choices")):
                out += self._error(chunk)
                continue
            out += self._chunk(chunk)
        return bytes(out)

    def close(self) -> bytes:
        out = b""
        if not self.finished and any(payload == b"[DONE]" for _, payload in self.decoder.flush()):
            out = self._end()  # a last [DONE] without its blank line
        if not self.finished:
            raise UpstreamError("the upstream stream ended before it was complete")
        return out

    # -- pieces --

    def _start(self, chunk: dict[str, Any]) -> bytes:
        if self.started:
            return b""
        self.started = True
        message: dict[str, Any] = {
            "id": message_id(chunk.get("id")),
            "type": "message",
            "role": "assistant",
            "model": self.model or chunk.get("model") or "",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return event("message_start", {"message": message})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close_block()
        self.block = (kind, self.blocks)
        self.blocks += 1
        return out + event("content_block_start", {"index": self.block[1], "content_block": block})

    def _close_block(self) -> bytes:
        if self.block is None:
            return b""
        index, self.block = self.block[1], None
        return event("content_block_stop", {"index": index})

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        return event("content_block_delta", {"index": index, "delta": delta})

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        out = bytearray(self._start(chunk))
        if isinstance(chunk.get("usage"), dict):
            self.openai_usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")  # Groq, vLLM: "reasoning"
            if reasoning:
                if self.block is None or self.block[0] != "thinking":
                    out += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out += self._delta(self.blocks - 1, {"type": "thinking_delta", "thinking": reasoning})
            for block in delta.get("thinking_blocks") or []:
                out += self._thinking_block(block)
            if delta.get("content"):
                if self.block is None or self.block[0] != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                out += self._delta(self.blocks - 1, {"type": "text_delta", "text": delta["content"]})
            for call in delta.get("tool_calls") or []:
                out += self._tool_call(call)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
                out += self._close_block()
        return bytes(out)

    def _thinking_block(self, block: dict[str, Any]) -> bytes:
        if block.get("type") == "redacted_thinking":
            return self._open("redacted", block) + self._close_block()
        out = b""
        if self.block is None or self.block[0] != "thinking":
            out = self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
        if block.get("thinking"):
            out += self._delta(self.blocks - 1, {"type": "thinking_delta", "thinking": block["thinking"]})
        if block.get("signature"):
            out += self._delta(self.blocks - 1, {"type": "signature_delta", "signature": block["signature"]})
        return out

    def _tool_call(self, call: dict[str, Any]) -> bytes:
        position = int(call.get("index", 0))
        function = call.get("function") or {}
        out = b""
        if position not in self.tool_blocks:
            block: dict[str, Any] = {"type": "tool_use", "id": call.get("id") or f"toolu_{position}",
                     "name": function.get("name") or "", "input": {}}  # fmt: skip
            out = self._open("tool_use", block)
            self.tool_blocks[position] = self.blocks - 1
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # some servers send an object, not JSON text
            arguments = orjson.dumps(arguments).decode()
        if arguments:
            out += self._delta(self.tool_blocks[position], {"type": "input_json_delta", "partial_json": arguments})
        return out

    def _end(self) -> bytes:
        out = bytearray(self._start({}))
        out += self._close_block()
        final = usage_to_anthropic(self.openai_usage)
        stop = {"stop_reason": self.stop_reason or "end_turn", "stop_sequence": None}
        out += event("message_delta", {"delta": stop, "usage": final})
        out += event("message_stop", {})
        self.finished = True
        return bytes(out)

    def _error(self, chunk: Any) -> bytes:
        self.finished = True
        error = chunk.get("error") if isinstance(chunk, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(error or chunk)
        status = error.get("status_code") if isinstance(error, dict) else None
        err = GatewayError(str(message), status=int(status) if isinstance(status, int) else 502)
        return error_event(err)
