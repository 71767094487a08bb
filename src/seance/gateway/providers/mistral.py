"""Mistral's chat API (https://docs.mistral.ai/api/): OpenAI's shape with its own parameter names,
no unknown fields (a 422), usage always on the last stream chunk, and Magistral's reasoning as
typed content chunks: `content: [{"type": "thinking", "thinking": [{"type": "text", …}]},
{"type": "text", "text": …}]`, which OpenAI clients read as a string `content` plus
`reasoning_content`. Answers without such a list pass through as they came."""

from __future__ import annotations

from typing import Any

import orjson

from seance.gateway.errors import CONTEXT_WINDOW, upstream_shape
from seance.gateway.formats import openai as shapes
from seance.gateway.providers.base import OPENAI_ERROR_KINDS, Call, FollowUp, Reply, StreamTranslator
from seance.gateway.providers.completion import completions_through_chat
from seance.gateway.providers.openai_compat import OpenAICompatible, UsageChunkStream
from seance.gateway.providers.params import Params

LIST_CONTENT = b'"content":['


@completions_through_chat
class Mistral(OpenAICompatible):
    name = "mistral"
    # "Prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 maximum context length"
    error_kinds = (*OPENAI_ERROR_KINDS, ("too large for model with", CONTEXT_WINDOW))
    key_env = ("MISTRAL_API_KEY",)
    base_env = ("MISTRAL_API_BASE",)
    default_base = "https://api.mistral.ai/v1"
    model_prefixes = (
        "mistral-", "open-mistral", "open-mixtral", "codestral", "ministral", "pixtral", "magistral",
        "devstral",
    )  # fmt: skip
    params = Params(
        frozenset({
            "temperature", "top_p", "max_tokens", "stop", "response_format", "tools", "tool_choice",
            "presence_penalty", "frequency_penalty", "n", "prediction", "parallel_tool_calls",
        }),
        renamed={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
        # `user` has no Mistral field; stream_options neither, but Mistral sends usage on the last
        # chunk anyway, from which the gateway makes the usage chunk a client asked for
        dropped=frozenset({"user", "safety_identifier", "stream_options"}),
    )  # fmt: skip

    def parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        reply = super().parse(call, status, body)
        if isinstance(reply, Reply) and LIST_CONTENT in body:
            with upstream_shape(self.name):
                data = shapes.loads(body, self.name)
                for choice in data.get("choices") or []:
                    flatten(choice.get("message") or {})
            return Reply(orjson.dumps(data), reply.usage)
        return reply

    def stream(self, call: Call) -> StreamTranslator:
        return MistralStream(self.name, usage_chunk=bool(call.state.get("usage_chunk")))


def flatten(message: dict[str, Any]) -> None:
    """A message or delta whose content is a list of chunks: text to `content`, thinking to
    `reasoning_content`."""
    content = message.get("content")
    if not isinstance(content, list):
        return
    texts, thoughts = [], []
    for chunk in content:
        if not isinstance(chunk, dict):
            continue
        if chunk.get("type") == "text":
            texts.append(str(chunk.get("text") or ""))
        elif chunk.get("type") == "thinking":
            thinking = chunk.get("thinking")
            if isinstance(thinking, str):
                thoughts.append(thinking)
            else:
                thoughts += [str(p.get("text") or "") for p in thinking or [] if isinstance(p, dict)]
    message["content"] = "".join(texts)
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)


class MistralStream(UsageChunkStream):
    marks = (LIST_CONTENT,)

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any]:
        for choice in chunk.get("choices") or []:
            flatten(choice.get("delta") or {})
        return super().rewrite(chunk)
