"""/v1/completions for models that only offer chat (OpenAI's gpt-4*, gpt-3.5-turbo, Mistral, Groq,
every translating provider), as LiteLLM does: the prompt goes as one user message, the chat answer
comes back as a `text_completion` (streams too). A class decorator on the provider's adapter:

    @completions_through_chat
    class Anthropic(Adapter): ...

wraps its build, parse and stream (its own, whatever they are) and adds "completion" to its
operations; `native_completion` says when the provider's own completions endpoint serves the model.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson

from seance.gateway.errors import BadRequest, upstream_shape
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.sse import DONE, complete_events
from seance.gateway.providers.base import Call, FollowUp, Reply, StreamTranslator, UpstreamRequest

# completions parameters with no chat counterpart: refused, or left out with drop_params
NO_CHAT_COUNTERPART = ("suffix", "echo", "best_of", "logprobs")


A = TypeVar("A", bound=type)


def completions_through_chat(cls: A) -> A:
    # The provider's own build, parse and stream, called directly by the wrappers: reached through
    # super() from a mixin, each call cost ~1.5k instructions more (a super object and a walk of
    # the MRO; ~3k of every request of the wrapped providers: bench/instructions.py).
    build, parse, stream = cls.build, cls.parse, cls.stream  # type: ignore[attr-defined]

    def build_via_chat(self: Any, call: Call) -> UpstreamRequest:
        if call.op == "completion":
            native = getattr(self, "native_completion", None)  # the provider's own, when it has one
            if not (native is not None and native(call)):
                as_chat(call, self.name)
        request: UpstreamRequest = build(self, call)
        return request

    def parse_via_chat(self: Any, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        reply: Reply | FollowUp = parse(self, call, status, body)
        if call.state.get("via_chat") and isinstance(reply, Reply):
            with upstream_shape(self.name):
                return Reply(text_completion(shapes.loads(reply.body, self.name)), reply.usage)
        return reply

    def stream_via_chat(self: Any, call: Call) -> StreamTranslator:
        translator: StreamTranslator = stream(self, call)
        return ChunksToCompletion(translator, self.name) if call.state.get("via_chat") else translator

    wrapped = type(
        cls.__name__,
        (cls,),
        {
            "__doc__": cls.__doc__,
            "__module__": cls.__module__,
            "build": build_via_chat,
            "parse": parse_via_chat,
            "stream": stream_via_chat,
            "operations": frozenset({*cls.operations, "completion"}),  # type: ignore[attr-defined]
        },
    )
    wrapped.__qualname__ = cls.__qualname__
    return wrapped  # type: ignore[return-value]


def as_chat(call: Call, provider: str) -> None:
    """Turns the completions call into the chat call that answers it."""
    body = dict(call.body)
    prompt = body.pop("prompt", None)
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest(f"{provider} answers completions through chat: prompt must be one string", param="prompt")
    for key in NO_CHAT_COUNTERPART:
        value = body.pop(key, None)
        quiet = (
            value is None or value is False or value == "" or (key == "best_of" and type(value) is int and value == 1)
        )
        if not quiet and not call.drop_params:
            raise shapes.unsupported(provider, key)
    body["messages"] = [{"role": "user", "content": prompt}]
    call.op, call.body, call.raw = "chat", body, b""
    call.state["via_chat"] = True


def text_completion(chat: Any) -> bytes:
    choices = []
    for position, choice in enumerate(chat.get("choices") or []):
        message = choice.get("message") or {}
        text = message.get("content")
        choices.append(
            {
                "index": choice.get("index", position),
                "text": text if isinstance(text, str) else shapes.text_of(text),
                "logprobs": None,
                "finish_reason": choice.get("finish_reason"),
            }
        )
    out: dict[str, Any] = {
        "id": chat.get("id") or shapes.new_id("cmpl-"),
        "object": "text_completion",
        "created": chat.get("created") or 0,
        "model": chat.get("model"),
        "choices": choices,
    }
    if chat.get("usage") is not None:
        out["usage"] = chat["usage"]
    return orjson.dumps(out)


class ChunksToCompletion(StreamTranslator):
    """The adapter's OpenAI chat chunks as completion chunks: each text delta a `text_completion`
    event, the finish reason and the usage chunk kept, role and reasoning-only chunks left out."""

    def __init__(self, inner: StreamTranslator, provider: str) -> None:
        self.inner = inner
        self.provider = provider
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        return self._convert(self.inner.feed(data))

    def close(self) -> bytes:
        out = self._convert(self.inner.close())
        self.usage = self.inner.usage
        if self.pending.strip():
            out += self._convert(b"\n\n")
        return out

    def _convert(self, data: bytes) -> bytes:
        ready, self.pending = complete_events(self.pending, data)
        if not ready:
            return b""
        out = bytearray()
        for event in ready.replace(b"\r\n", b"\n").split(b"\n\n"):
            line = event.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                out += DONE
                continue
            with upstream_shape(self.provider):
                out += self._chunk(shapes.loads(payload, self.provider), payload)
        return bytes(out)

    @staticmethod
    def _chunk(chunk: Any, payload: bytes) -> bytes:
        if not isinstance(chunk, dict) or "error" in chunk:
            return b"data: " + payload + b"\n\n"  # an error event goes as it came
        choices = []
        for position, choice in enumerate(chunk.get("choices") or []):
            text = (choice.get("delta") or {}).get("content")
            text = text if isinstance(text, str) else ""
            if text or choice.get("finish_reason"):
                choices.append(
                    {"index": choice.get("index", position), "text": text, "logprobs": None,
                     "finish_reason": choice.get("finish_reason")}
                )  # fmt: skip
        if not choices and not chunk.get("usage"):
            return b""
        out: dict[str, Any] = {
            "id": chunk.get("id"), "object": "text_completion", "created": chunk.get("created") or 0,
            "model": chunk.get("model"), "choices": choices,
        }  # fmt: skip
        if chunk.get("usage"):
            out["usage"] = chunk["usage"]
        return b"data: " + orjson.dumps(out) + b"\n\n"
