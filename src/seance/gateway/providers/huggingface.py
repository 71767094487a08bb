"""Hugging Face: the inference router (OpenAI-compatible) and TGI servers (`api_base` to a TGI
endpoint), `huggingface/<org>/<model>`.

The router answers in OpenAI's format, so bytes pass through. TGI speaks a dialect: empty ids,
`eos_token` finish reasons, chat answers called "text_completion", and (before TGI 2) tool calls
with integer ids, a `description` and arguments as an object. Only answers that show one of these
marks are rewritten; everything else goes through as it came.
"""

from __future__ import annotations

from typing import Any

import orjson

from seance.gateway.errors import UpstreamError, upstream_shape
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.sse import complete_events
from seance.gateway.providers.base import OPENAI_ERROR_KINDS, Call, FollowUp, Reply, StreamTranslator
from seance.gateway.providers.openai_compat import TGI_CONTEXT_WINDOW, OpenAICompatible, PassThroughStream
from seance.gateway.providers.params import Params

FINISH_REASONS = {"eos_token": "stop", "eos": "stop", "stop_sequence": "stop", "max_tokens": "length"}
QUIRK_MARKS = (b'"id":""', b'"id": ""', b'"eos_token"', b'"eos"', b'"text_completion"', b'"arguments":{', b'"id":0')


def has_quirks(data: bytes) -> bool:
    return any(mark in data for mark in QUIRK_MARKS)


class HuggingFace(OpenAICompatible):
    name = "huggingface"
    error_kinds = (*OPENAI_ERROR_KINDS, TGI_CONTEXT_WINDOW)
    key_env = ("HUGGINGFACE_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
    base_env = ("HF_API_BASE", "HUGGINGFACE_API_BASE")
    default_base = "https://router.huggingface.co/v1"
    version_suffix = "/v1"  # a bare TGI server URL gets its OpenAI-compatible /v1 routes
    params = Params.all_but()  # the router passes parameters to the serving provider; TGI takes top_k

    def parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        reply = super().parse(call, status, body)
        if isinstance(reply, Reply) and call.op == "chat" and has_quirks(body):
            with upstream_shape(self.name):
                data = shapes.loads(body, self.name)
                fix_completion(data)
            return Reply(orjson.dumps(data), reply.usage)
        return reply

    def stream(self, call: Call) -> StreamTranslator:
        return TGIStream(self.name)


def fix_completion(data: dict[str, Any]) -> None:
    data["id"] = data.get("id") or shapes.new_id()
    data["object"] = "chat.completion"
    for choice in data.get("choices") or []:
        choice["finish_reason"] = FINISH_REASONS.get(choice.get("finish_reason"), choice.get("finish_reason"))
        message = choice.get("message") or {}
        for position, call in enumerate(message.get("tool_calls") or []):
            fix_tool_call(call, position)
        if message.get("tool_calls") and choice["finish_reason"] == "stop":
            choice["finish_reason"] = "tool_calls"
        message.setdefault("content", None)


def fix_tool_call(call: dict[str, Any], position: int) -> None:
    if not isinstance(call.get("id"), str) or not call["id"]:
        call["id"] = f"call_{call.get('id', position)}"
    function = call.get("function") or {}
    function.pop("description", None)
    if not isinstance(function.get("arguments"), str):
        function["arguments"] = orjson.dumps(function.get("arguments") or {}).decode()


class TGIStream(StreamTranslator):
    """Passes events through as they come; only events with a TGI mark are rewritten."""

    def __init__(self, provider: str) -> None:
        self.passthrough = PassThroughStream(provider)
        self.pending = b""
        self.id = shapes.new_id()

    def feed(self, data: bytes) -> bytes:
        ready, self.pending = complete_events(self.pending, data)
        if not ready:
            return b""
        if has_quirks(ready):
            ready = b"".join(self._fix(event) for event in ready.split(b"\n\n") if event.strip())
        return self.passthrough.feed(ready)

    def _fix(self, event: bytes) -> bytes:
        with upstream_shape(self.passthrough.provider):
            return self._repair(event)

    def _repair(self, event: bytes) -> bytes:
        if not event.lstrip().startswith(b"data:") or not has_quirks(event):
            return event + b"\n\n"
        data = shapes.loads(event.lstrip()[5:].strip(), self.passthrough.provider)
        if not isinstance(data, dict):
            raise UpstreamError(f"{self.passthrough.provider}: sent an unexpected stream event")
        data["id"] = data.get("id") or self.id
        data["object"] = "chat.completion.chunk"
        for choice in data.get("choices") or []:
            reason = choice.get("finish_reason")
            choice["finish_reason"] = FINISH_REASONS.get(reason, reason)
            for position, call in enumerate((choice.get("delta") or {}).get("tool_calls") or []):
                call.setdefault("index", position)
                fix_tool_call(call, position)
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def close(self) -> bytes:
        tail = self.feed(b"\n\n") if self.pending.strip() else b""
        end = self.passthrough.close()
        self.usage = self.passthrough.usage
        return tail + end
