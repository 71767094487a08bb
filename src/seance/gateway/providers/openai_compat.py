"""The OpenAI-compatible family: one adapter, a table of endpoints and key names.

Fast path: the client's bytes go upstream unchanged when nothing needs changing (else one orjson
dump with the model swapped), and the upstream's bytes come back unchanged, usage read from them.
"""

from __future__ import annotations

from typing import ClassVar

import orjson

from seance.gateway.errors import UpstreamError
from seance.gateway.formats.openai import include_usage
from seance.gateway.providers.base import (
    Adapter,
    Call,
    FollowUp,
    Operation,
    Reply,
    StreamTranslator,
    UpstreamRequest,
    Usage,
    is_json_object,
    json_headers,
)

PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "completion": "/completions",
    "embedding": "/embeddings",
}


class OpenAICompatible(Adapter):
    operations: ClassVar[frozenset[Operation]] = frozenset({"chat", "completion", "embedding"})
    version_suffix: ClassVar[str] = ""  # appended to a configured api_base that lacks it ("/v1")

    def normalize_base(self, base: str) -> str:
        base = base.rstrip("/")
        if self.version_suffix and not base.endswith(self.version_suffix):
            base += self.version_suffix
        return base

    def url(self, call: Call) -> str:
        return call.target.api_base + PATHS[call.op]

    def headers(self, call: Call) -> dict[str, str]:
        headers = json_headers(call.target.api_key)
        return headers

    def payload(self, call: Call) -> bytes:
        if call.stream and call.want_usage and not include_usage(call.body):
            options = call.body.get("stream_options")
            options = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
            return orjson.dumps({**call.body, "model": call.target.model, "stream_options": options})
        if call.raw and call.body.get("model") == call.target.model:
            return call.raw
        return orjson.dumps({**call.body, "model": call.target.model})

    def build(self, call: Call) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url(call), self.headers(call), self.payload(call), call.stream)

    def parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        if not is_json_object(body):
            raise UpstreamError(f"{self.name}: answered HTTP {status} with a body that is not JSON")
        return Reply(body, read_usage(body))

    def stream(self, call: Call) -> StreamTranslator:
        if call.want_usage and not include_usage(call.body):
            return UsageStrippingStream(self.name)
        return PassThroughStream(self.name)


class PassThroughStream(StreamTranslator):
    """Forwards SSE bytes as they come. Keeps only a short tail to read the final usage chunk and
    to tell a finished stream ([DONE] or an error event) from one cut short."""

    TAIL = 8192

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.tail = b""

    def feed(self, data: bytes) -> bytes:
        self.tail = (self.tail + data)[-self.TAIL :]
        return data

    def close(self) -> bytes:
        self.usage = read_usage(self.tail)
        end = self.tail.rstrip()
        if end.endswith(b"[DONE]"):
            return b""
        last_event = end.rsplit(b"\n\n", 1)[-1]
        if b'"error"' in last_event:
            return b"\n\n" if not self.tail.endswith(b"\n\n") else b""
        raise UpstreamError(f"{self.provider}: the stream ended before it was complete")


class UsageStrippingStream(PassThroughStream):
    """A pass-through stream for which the gateway asked the provider for the final usage chunk the
    client did not ask for: the chunk is read, then left out, so the client gets exactly the stream
    it asked for. Events are split only here (a usage chunk is `"choices":[]` with `"usage"`)."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        data = self.pending + data
        end = data.rfind(b"\n\n")
        if end == -1:
            self.pending = data
            return b""
        self.pending = data[end + 2 :]
        events = data[: end + 2].split(b"\n\n")
        kept = [e for e in events[:-1] if not _usage_only(e)]
        out = b"".join(e + b"\n\n" for e in kept)
        self.tail = (self.tail + data[: end + 2])[-self.TAIL :]
        return out

    def close(self) -> bytes:
        tail = self.pending
        self.tail = (self.tail + tail)[-self.TAIL :]
        closing = super().close()
        return (b"" if _usage_only(tail.strip()) else tail) + closing


def _usage_only(event: bytes) -> bool:
    compact = event.replace(b" ", b"")
    return b'"choices":[]' in compact and b'"usage":{' in compact


def read_usage(body: bytes) -> Usage | None:
    """Usage from the last `"usage"` object of a JSON body or SSE tail, read with bytes searches
    instead of a parse: an embeddings answer can be megabytes of floats, and this runs on every
    pass-through answer. `"usage": null` (and no usage at all) gives None."""
    at = body.rfind(b'"usage"')
    if at == -1:
        return None
    prompt = _count_after(body, b'"prompt_tokens"', at)
    completion = _count_after(body, b'"completion_tokens"', at)
    if prompt is None and completion is None:
        return None
    return Usage(prompt or 0, completion or 0)


def _count_after(body: bytes, key: bytes, start: int) -> int | None:
    at = body.find(key, start)
    if at == -1:
        return None
    at += len(key)
    end = len(body)
    while at < end and body[at] in b" \t\r\n:":
        at += 1
    digits = at
    while digits < end and 0x30 <= body[digits] <= 0x39:
        digits += 1
    return int(body[at:digits]) if digits > at else None


# The family. `default_base` ends at the version segment; PATHS are appended to it.


class OpenAI(OpenAICompatible):
    name = "openai"
    key_env = ("OPENAI_API_KEY",)
    base_env = ("OPENAI_API_BASE", "OPENAI_BASE_URL")
    default_base = "https://api.openai.com/v1"
    model_prefixes = (
        "gpt-", "chatgpt-", "o1", "o3", "o4", "text-embedding-", "davinci-", "babbage-",
        "omni-moderation", "codex-",
    )  # fmt: skip


class TogetherAI(OpenAICompatible):
    name = "together_ai"
    key_env = ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY")
    base_env = ("TOGETHER_API_BASE", "TOGETHERAI_API_BASE")
    default_base = "https://api.together.xyz/v1"


class Groq(OpenAICompatible):
    name = "groq"
    key_env = ("GROQ_API_KEY",)
    base_env = ("GROQ_API_BASE",)
    default_base = "https://api.groq.com/openai/v1"


class Mistral(OpenAICompatible):
    name = "mistral"
    key_env = ("MISTRAL_API_KEY",)
    base_env = ("MISTRAL_API_BASE",)
    default_base = "https://api.mistral.ai/v1"
    model_prefixes = (
        "mistral-", "open-mistral", "open-mixtral", "codestral", "ministral", "pixtral", "magistral",
        "devstral",
    )  # fmt: skip


class DeepSeek(OpenAICompatible):
    name = "deepseek"
    key_env = ("DEEPSEEK_API_KEY",)
    base_env = ("DEEPSEEK_API_BASE",)
    default_base = "https://api.deepseek.com/v1"
    model_prefixes = ("deepseek-",)


class OpenRouter(OpenAICompatible):
    name = "openrouter"
    key_env = ("OPENROUTER_API_KEY", "OR_API_KEY")
    base_env = ("OPENROUTER_API_BASE",)
    default_base = "https://openrouter.ai/api/v1"


class HostedVLLM(OpenAICompatible):
    name = "hosted_vllm"
    key_env = ("HOSTED_VLLM_API_KEY",)
    base_env = ("HOSTED_VLLM_API_BASE",)
    default_base = None
    key_required = False
    version_suffix = "/v1"


class Ollama(OpenAICompatible):
    """Ollama's OpenAI-compatible endpoints under /v1 (the native API is `ollama_chat/`)."""

    name = "ollama"
    key_env = ("OLLAMA_API_KEY",)
    base_env = ("OLLAMA_API_BASE",)
    default_base = "http://localhost:11434"
    key_required = False
    version_suffix = "/v1"
