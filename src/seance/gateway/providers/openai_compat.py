"""The OpenAI-compatible family: one adapter; per provider its endpoint, key names and a table of
the OpenAI parameters it takes, renames, drops or refuses (`params.py`).

Fast path: the client's bytes go upstream unchanged when nothing needs changing (else one orjson
dump with the model swapped, and the table applied when the body holds one of its fields), and the
upstream's bytes come back unchanged, usage read from them.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import orjson

from seance.gateway.errors import CONTEXT_WINDOW, UpstreamError, upstream_shape
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.sse import complete_events
from seance.gateway.providers.base import (
    FULL_JSON_CHECK,
    NOT_PARSED,
    OPENAI_ERROR_KINDS,
    Adapter,
    Call,
    ErrorKinds,
    FollowUp,
    Operation,
    Reply,
    StreamTranslator,
    UpstreamRequest,
    Usage,
    json_headers,
    json_object,
)
from seance.gateway.providers.completion import completions_through_chat
from seance.gateway.providers.params import OPENAI, Params

# Text Generation Inference (Together's and Hugging Face's servers): "Input validation error:
# `inputs` tokens + `max_new_tokens` must be <= 4096"
TGI_CONTEXT_WINDOW = ("`inputs` tokens + `max_new_tokens`", CONTEXT_WINDOW)
# Ollama: "the input length exceeds the context length"
OLLAMA_CONTEXT_WINDOW = ("exceeds the context length", CONTEXT_WINDOW)

PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "completion": "/completions",
    "embedding": "/embeddings",
}


class OpenAICompatible(Adapter):
    operations: ClassVar[frozenset[Operation]] = frozenset({"chat", "completion", "embedding"})
    version_suffix: ClassVar[str] = ""  # appended to a configured api_base that lacks it ("/v1")
    params: ClassVar[Params] = OPENAI  # what the provider does with each OpenAI chat parameter
    error_kinds: ClassVar[ErrorKinds] = OPENAI_ERROR_KINDS

    def normalize_base(self, base: str) -> str:
        base = base.rstrip("/")
        if self.version_suffix and not base.endswith(self.version_suffix):
            base += self.version_suffix
        return base

    def supported_params(self) -> frozenset[str]:
        return self.params.accepted | frozenset(self.params.renamed) | self.params.converted

    def url(self, call: Call) -> str:
        return call.target.api_base + PATHS[call.op]

    def headers(self, call: Call) -> dict[str, str]:
        headers = json_headers(call.target.api_key)
        return headers

    def table(self, call: Call) -> Params:
        """The parameter table for this call (Azure's depends on the API version and the model)."""
        return self.params

    def payload(self, call: Call) -> bytes:
        table = self.table(call)
        if (call.op != "chat" or not table.needed(call.body)) and not (call.stream and call.want_usage):
            # the fast path: the client's bytes, or one dump with the model swapped
            if call.raw and call.body.get("model") == call.target.model:
                return call.raw
            return orjson.dumps({**call.body, "model": call.target.model})
        body = call.body
        if call.op == "chat" and table.needed(body):
            if "stream_options" in table.dropped and call.stream and shapes.include_usage(body):
                call.state["usage_chunk"] = True  # the provider sends usage anyway; we add the chunk
            body = table.apply(body, self.name, call.drop_params)
        if (
            call.stream
            and call.want_usage
            and not shapes.include_usage(call.body)
            and "stream_options" not in table.dropped
        ):
            options = body.get("stream_options")
            options = {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
            body = {**body, "stream_options": options}
            call.state["strip_usage"] = True  # asked for a hook, not for the client
        return orjson.dumps({**body, "model": call.target.model})

    def build(self, call: Call) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url(call), self.headers(call), self.payload(call), call.stream)

    def parse(self, call: Call, status: int, body: bytes) -> Reply | FollowUp:
        # Embeddings are floats, the slowest thing to parse: 256 of them (text-embedding-3 with
        # `dimensions`, pretty-printed as OpenAI answers, 6 KB) cost 80k instructions, a fifth of
        # the whole request (bench/instructions.py), and nothing of them is read. Their ends are
        # checked, as a large body's are, and the usage is searched for.
        parsed = json_object(body, 0 if call.op == "embedding" else FULL_JSON_CHECK)
        if parsed is None:
            raise UpstreamError(f"{self.name}: answered HTTP {status} with a body that is not JSON")
        # the usage from the parse that checked the body; one not parsed is searched instead
        usage = Usage.from_openai(parsed.get("usage")) if parsed is not NOT_PARSED else read_usage(body)
        return Reply(body, usage)

    def stream(self, call: Call) -> StreamTranslator:
        if call.state.get("usage_chunk"):
            return UsageChunkStream(self.name, usage_chunk=True)
        if call.state.get("strip_usage"):
            return UsageStrippingStream(self.name)
        return PassThroughStream(self.name)


class PassThroughStream(StreamTranslator):
    """Forwards SSE bytes as they come. Keeps only a short tail to read the final usage chunk and
    to tell a finished stream ([DONE] or an error event) from one cut short."""

    TAIL = 8192

    def __init__(self, provider: str) -> None:
        self.provider = provider
        # The chunks as they came, cut back to the last TAIL bytes once they hold twice that: joining
        # each chunk to the tail and cutting it back copied up to 16 KB a chunk (an event is ~150
        # bytes), now about one byte more a byte streamed.
        self.kept: list[bytes] = []
        self.kept_bytes = 0

    def feed(self, data: bytes) -> bytes:
        self.kept.append(data)
        self.kept_bytes += len(data)
        if self.kept_bytes > 2 * self.TAIL:
            self.kept = [b"".join(self.kept)[-self.TAIL :]]
            self.kept_bytes = len(self.kept[0])
        return data

    def close(self) -> bytes:
        tail = b"".join(self.kept)[-self.TAIL :]
        self.usage = last_usage(tail)
        end = tail.rstrip()
        if end.endswith(b"[DONE]"):
            return b""
        last_event = end.rsplit(b"\n\n", 1)[-1]
        if b'"error"' in last_event:
            return b"\n\n" if not tail.endswith(b"\n\n") else b""
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
        super().feed(data[: end + 2])  # kept for close(), as it came
        return out

    def close(self) -> bytes:
        tail = self.pending
        super().feed(tail)
        closing = super().close()
        return (b"" if _usage_only(tail.strip()) else tail) + closing


def _usage_only(event: bytes) -> bool:
    compact = event.replace(b" ", b"")
    return b'"choices":[]' in compact and b'"usage":{' in compact


def last_usage(tail: bytes) -> Usage | None:
    """The usage of a stream: its last event that has one, parsed (a fraction of what searching the
    bytes for each count costs), else searched for like a body."""
    at = tail.rfind(b'"usage"')
    if at == -1:
        return None
    start = tail.rfind(b"data:", 0, at)
    end = tail.find(b"\n", at)
    if end == -1:
        end = len(tail)
    if start != -1:
        # The usage is a field of its event's object, most often the last: from it to the event's
        # end is the rest of that object, parsed alone (the whole event, with its id, model and
        # choices, cost ~3k instructions more). Nested deeper, it does not parse: the whole event.
        try:
            event = orjson.loads(b"{" + tail[at:end])
        except orjson.JSONDecodeError:
            try:
                event = orjson.loads(tail[start + 5 : end])
            except orjson.JSONDecodeError:
                event = None
        if isinstance(event, dict) and "usage" in event:
            return Usage.from_openai(event["usage"])
    return read_usage(tail)


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
    # priced apart (catalogue.Rates): prompt_tokens_details.cached_tokens (DeepSeek's older
    # prompt_cache_hit_tokens), completion_tokens_details.reasoning_tokens, and the cache writes
    # of Anthropic models behind an OpenAI-compatible API (OpenRouter)
    cached = written = None
    if body.find(b"cache", at) != -1:  # the three cache counts are rare: one search spares three
        cached = _count_after(body, b'"cached_tokens"', at)
        if cached is None:
            cached = _count_after(body, b'"prompt_cache_hit_tokens"', at)
        written = _count_after(body, b'"cache_creation_input_tokens"', at)
    reasoning = _count_after(body, b'"reasoning_tokens"', at)
    return Usage(prompt or 0, completion or 0, cached or 0, written or 0, reasoning or 0)


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


@completions_through_chat
class OpenAI(OpenAICompatible):
    """/v1/completions serves only the instruct and base models; every chat model answers it
    through chat (completion.py)."""

    name = "openai"
    catalogue = ("openai", "text-completion-openai")
    key_env = ("OPENAI_API_KEY",)
    base_env = ("OPENAI_API_BASE", "OPENAI_BASE_URL")
    default_base = "https://api.openai.com/v1"
    model_prefixes: ClassVar[tuple[str, ...]] = (
        "gpt-", "chatgpt-", "o1", "o3", "o4", "text-embedding-", "davinci-", "babbage-",
        "omni-moderation", "codex-",
    )  # fmt: skip
    completion_models: ClassVar[tuple[str, ...]] = ("gpt-3.5-turbo-instruct", "davinci-", "babbage-")

    def native_completion(self, call: Call) -> bool:
        return call.target.model.startswith(self.completion_models)


class TextCompletionOpenAI(OpenAI):
    """`text-completion-openai/<model>`: LiteLLM's prefix for OpenAI's completions endpoint, always."""

    name = "text-completion-openai"
    catalogue = ("text-completion-openai", "openai")
    model_prefixes = ()

    def native_completion(self, call: Call) -> bool:
        return True


class TogetherAI(OpenAICompatible):
    """https://docs.together.ai/reference/chat-completions-1 — `logprobs` is a count there, not a
    switch; usage comes on the last chunk, without stream_options."""

    name = "together_ai"
    error_kinds = (*OPENAI_ERROR_KINDS, TGI_CONTEXT_WINDOW)
    key_env = ("TOGETHER_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_API_KEY")
    base_env = ("TOGETHER_API_BASE", "TOGETHERAI_API_BASE")
    default_base = "https://api.together.xyz/v1"
    params = Params(
        frozenset({
            "max_tokens", "stop", "temperature", "top_p", "n", "presence_penalty", "frequency_penalty",
            "logit_bias", "seed", "response_format", "tools", "tool_choice", "reasoning_effort", "top_k",
        }),
        renamed={"max_completion_tokens": "max_tokens"},
        dropped=frozenset({"user", "safety_identifier", "stream_options"}),
    )  # fmt: skip


@completions_through_chat
class Groq(OpenAICompatible):
    name = "groq"
    # context_length_exceeded with "Please reduce the length of the messages or completion."
    error_kinds = (*OPENAI_ERROR_KINDS, ("reduce the length of the messages", CONTEXT_WINDOW))
    key_env = ("GROQ_API_KEY",)
    base_env = ("GROQ_API_BASE",)
    default_base = "https://api.groq.com/openai/v1"
    # https://console.groq.com/docs/api-reference#chat-create and /docs/openai: logprobs,
    # top_logprobs and logit_bias are not supported (a 400 from Groq too)
    params = Params(
        frozenset({
            "frequency_penalty", "presence_penalty", "max_completion_tokens", "max_tokens", "n",
            "parallel_tool_calls", "reasoning_effort", "response_format", "seed", "service_tier", "stop",
            "stream_options", "temperature", "tool_choice", "tools", "top_p", "user", "function_call",
            "functions",
        }),
        dropped=frozenset({"safety_identifier"}),
    )  # fmt: skip


@completions_through_chat
class DeepSeek(OpenAICompatible):
    name = "deepseek"
    key_env = ("DEEPSEEK_API_KEY",)
    base_env = ("DEEPSEEK_API_BASE",)
    default_base = "https://api.deepseek.com/v1"
    model_prefixes = ("deepseek-",)
    # https://api-docs.deepseek.com/api/create-chat-completion
    params = Params(
        frozenset({
            "frequency_penalty", "max_tokens", "presence_penalty", "response_format", "stop",
            "stream_options", "temperature", "top_p", "tools", "tool_choice", "logprobs", "top_logprobs",
        }),
        renamed={"max_completion_tokens": "max_tokens"},
        dropped=frozenset({"user", "safety_identifier"}),
    )  # fmt: skip


class OpenRouter(OpenAICompatible):
    """Takes OpenAI's parameters and passes each to the routed model when it has it
    (https://openrouter.ai/docs/api-reference/parameters); `provider.require_parameters` makes it
    strict. So: everything, `top_k` included."""

    name = "openrouter"
    params = Params.all_but()
    key_env = ("OPENROUTER_API_KEY", "OR_API_KEY")
    base_env = ("OPENROUTER_API_BASE",)
    default_base = "https://openrouter.ai/api/v1"


class HostedVLLM(OpenAICompatible):
    """vLLM implements OpenAI's chat parameters plus its own sampling extras (`top_k`, `min_p`, …)."""

    name = "hosted_vllm"
    params = Params.all_but()
    key_env = ("HOSTED_VLLM_API_KEY",)
    base_env = ("HOSTED_VLLM_API_BASE",)
    default_base = None
    key_required = False
    version_suffix = "/v1"


class Ollama(OpenAICompatible):
    """Ollama's OpenAI-compatible endpoints under /v1 (the native API is `ollama_chat/`)."""

    name = "ollama"
    error_kinds = (*OPENAI_ERROR_KINDS, OLLAMA_CONTEXT_WINDOW)
    key_env = ("OLLAMA_API_KEY",)
    base_env = ("OLLAMA_API_BASE",)
    default_base = "http://localhost:11434"
    key_required = False
    version_suffix = "/v1"
    # https://docs.ollama.com/api/openai-compatibility: tool_choice, logit_bias, user and n are not
    # supported fields
    params = Params(
        frozenset({
            "frequency_penalty", "presence_penalty", "response_format", "seed", "stop", "stream_options",
            "temperature", "top_p", "max_tokens", "tools", "reasoning_effort", "logprobs", "top_logprobs",
        }),
        renamed={"max_completion_tokens": "max_tokens"},
        dropped=frozenset({"user", "safety_identifier"}),
    )  # fmt: skip


class RewritingStream(StreamTranslator):
    """A pass-through that looks at whole events: those holding one of `marks` are parsed and
    handed to `rewrite`; every other byte goes through as it came. `closing` (before [DONE]) is
    where a subclass adds a chunk of its own."""

    marks: tuple[bytes, ...] = ()

    def __init__(self, provider: str) -> None:
        self.passthrough = PassThroughStream(provider)
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        ready, self.pending = complete_events(self.pending, data)
        if not ready:
            return b""
        if any(mark in ready for mark in self.marks):
            ready = b"".join(self._event(event) for event in _EVENT_END.split(ready) if event.strip())
        return self.passthrough.feed(ready)

    def _event(self, event: bytes) -> bytes:
        line = event.lstrip()
        if not line.startswith(b"data:") or not any(mark in event for mark in self.marks):
            return event + b"\n\n"
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return self.closing() + event + b"\n\n"
        with upstream_shape(self.passthrough.provider):
            data = shapes.loads(payload, self.passthrough.provider)
            if not isinstance(data, dict):
                raise UpstreamError(f"{self.passthrough.provider}: sent an unexpected stream event")
            return b"data: " + orjson.dumps(self.rewrite(data)) + b"\n\n"

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any]:
        return chunk

    def closing(self) -> bytes:
        return b""

    def close(self) -> bytes:
        tail = self.feed(b"\n\n") if self.pending.strip() else b""
        end = self.passthrough.close()
        self.usage = self.passthrough.usage
        return tail + end


class UsageChunkStream(RewritingStream):
    """For a provider that puts usage on its last chunk and has no stream_options: the usage chunk
    (no choices) an OpenAI client asked for with include_usage, made from the provider's usage."""

    def __init__(self, provider: str, *, usage_chunk: bool) -> None:
        super().__init__(provider)
        self.last: dict[str, Any] | None = None  # the chunk that carried usage
        if usage_chunk:
            self.marks = (*self.marks, b'"usage":{', b"[DONE]")

    def rewrite(self, chunk: dict[str, Any]) -> dict[str, Any]:
        if isinstance(chunk.get("usage"), dict):
            self.last = chunk
        return chunk

    def closing(self) -> bytes:
        if self.last is None:
            return b""
        head = {k: self.last[k] for k in ("id", "object", "created", "model") if k in self.last}
        return b"data: " + orjson.dumps({**head, "choices": [], "usage": self.last["usage"]}) + b"\n\n"


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n")
