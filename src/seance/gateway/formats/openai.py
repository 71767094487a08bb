"""OpenAI response shapes the translating adapters build: chat completions, embeddings and the
chunk stream, plus the request-side helpers they share (parameter checks, message content)."""

from __future__ import annotations

import base64
import secrets
import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.formats.sse import DONE


# Made for every answer, so not frozen (hashable all the same, and never changed once made): a
# frozen dataclass's __init__ sets each field through object.__setattr__, ~1.3k instructions a
# field, and Usage cost 9k instructions to make instead of 2.7k. The same holds for the other
# objects of every request, providers.base.Reply and upstream.UpstreamRequest.
@dataclass(slots=True, unsafe_hash=True)
class Usage:
    """Token counts as OpenAI reports them: the cached and cache-written input tokens are part of
    prompt_tokens, the reasoning tokens part of completion_tokens (each priced at its own rate)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # read from the provider's prompt cache
    cache_creation_tokens: int = 0  # written to it (Anthropic's cache_creation_input_tokens)
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage | None:
        # dict, not Mapping: the usage comes from orjson, and an ABC's isinstance goes through
        # ABCMeta.__instancecheck__ (three of them were ~1 % of a pass-through request's calls)
        if not isinstance(usage, dict):
            return None
        get = usage.get
        details = get("prompt_tokens_details")
        cached = (details.get("cached_tokens") or 0) if type(details) is dict else 0
        cached = cached or get("prompt_cache_hit_tokens") or 0  # DeepSeek's older name beside OpenAI's
        details = get("completion_tokens_details")
        reasoning = (details.get("reasoning_tokens") or 0) if type(details) is dict else 0
        prompt = get("prompt_tokens") or 0
        completion = get("completion_tokens") or 0
        written = get("cache_creation_input_tokens") or 0
        # int() only when a count is not an int already (a float, a string): an int() for each
        # and the helper's calls were ~2.7k of the ~11k instructions this took for every answer
        if type(prompt) is type(completion) is type(cached) is type(written) is type(reasoning) is int:
            return cls(prompt, completion, cached, written, reasoning)
        return cls(int(prompt), int(completion), int(cached), int(written), int(reasoning))


# The request's own shape, never refused by check_params (LiteLLM's gateway-level fields never reach
# an adapter: the context takes them out, see context.GATEWAY_FIELDS).
GATEWAY_KEYS = frozenset({"model", "messages", "stream", "stream_options", "input", "prompt", "encoding_format"})

# The parameters of OpenAI's chat completions request (https://platform.openai.com/docs/api-reference/chat/create)
# besides model, messages and stream. Every provider classifies each one (tests/gateway/providers/
# test_params.py): a parameter added here fails that test until each provider says what it does with it.
CHAT_PARAMS = frozenset(
    {
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "modalities", "n", "parallel_tool_calls", "prediction",
        "presence_penalty", "prompt_cache_key", "reasoning_effort", "response_format", "safety_identifier",
        "seed", "service_tier", "stop", "store", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip

# Not OpenAI's, yet common in OpenAI-format requests (LiteLLM takes both; the /v1/messages front
# door sends Anthropic's exact values in them): Anthropic-style `thinking` ({"type": "enabled",
# "budget_tokens": n}) and `top_k`. Classified per provider like CHAT_PARAMS.
EXTENSIONS = frozenset({"thinking", "top_k"})

# OpenAI's documented defaults: a parameter sent with its default value asks for nothing, so a
# provider without the parameter loses nothing when it is left out. `false` is a value like any
# other: `parallel_tool_calls: false` asks for something (the default is true), `logprobs: false`
# does not.
DEFAULTS: dict[str, Any] = {
    "n": 1, "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False, "parallel_tool_calls": True,
    "store": False, "tool_choice": "auto",
}  # fmt: skip


def loads(data: str | bytes, provider: str) -> Any:
    """JSON from an upstream answer or stream event; garbage is the upstream's failure (502)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"{provider}: answered with something that is not JSON") from exc


def new_id(prefix: str = "chatcmpl-") -> str:
    return prefix + secrets.token_hex(12)


def check_params(body: Mapping[str, Any], supported: Iterable[str], provider: str, drop: bool) -> None:
    """A 400 naming the first OpenAI parameter `provider` cannot honour, unless drop_params is on
    (then the adapter simply leaves it out). Values that ask for nothing count as absent."""
    if drop:
        return
    allowed = GATEWAY_KEYS.union(supported)
    for key, value in body.items():
        if key in allowed or asks_nothing(key, value):
            continue
        raise unsupported(provider, key)


def unsupported(provider: str, key: str) -> BadRequest:
    return BadRequest(
        f"{provider} does not support the parameter '{key}'; remove it, or set drop_params: true "
        "to have the gateway drop unsupported parameters",
        param=key,
        code="unsupported_parameter",
    )


def asks_nothing(key: str, value: Any) -> bool:
    """Null, an empty list or object, or OpenAI's documented default (the same type: `true` is not
    `n: 1`, `0.0` is a zero penalty)."""
    if value is None or value == {} or value == []:
        return True
    default = DEFAULTS.get(key, _MISSING)
    if default is _MISSING or isinstance(value, bool) is not isinstance(default, bool):
        return False
    return bool(value == default)


_MISSING = object()


def thinking_effort(thinking: Any) -> str | None:
    """Anthropic-style `thinking` as OpenAI's reasoning_effort, for providers with nothing finer."""
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    budget = budget if isinstance(budget, int) and not isinstance(budget, bool) else 0
    return "low" if budget <= 2048 else "medium" if budget <= 8192 else "high"


def stop_list(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise BadRequest("stop must be a string or a list of strings", param="stop")


def max_tokens(body: Mapping[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("max_tokens must be a positive integer", param="max_tokens")
    return value


def text_of(content: Any) -> str:
    """The text of an OpenAI message content: a string or a list of parts (non-text parts ignored)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    raise BadRequest("message content must be a string or a list of content parts", param="messages")


def messages_of(raw: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """(position, message) for each message of a chat request, each checked to be an object."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty list", param="messages")
    for position, message in enumerate(raw):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{position}] must be an object", param="messages")
        yield position, message


def image_url(part: Mapping[str, Any]) -> str:
    """The URL of an `image_url` content part: `{"image_url": {"url": …}}`, or the older bare string."""
    image = part.get("image_url")
    return str(image.get("url", "")) if isinstance(image, dict) else str(image or "")


def unsupported_part(kind: Any, position: int) -> BadRequest:
    return BadRequest(f"messages[{position}]: content part type {kind!r} is not supported", param="messages")


def parse_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if not url.startswith("data:"):
        return None
    header, _, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64" or not data:
        raise BadRequest("image data URLs must be base64 encoded", param="messages")
    return media_type or "application/octet-stream", data


def tool_arguments(arguments: Any) -> Any:
    """A tool call's arguments as an object: OpenAI sends a JSON string, some servers an object."""
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            return orjson.loads(arguments)
        except orjson.JSONDecodeError as exc:
            raise BadRequest("tool call arguments must be a JSON object", param="messages") from exc
    return arguments if arguments is not None else {}


def include_usage(body: Mapping[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


# --- responses ---------------------------------------------------------------------------------


def usage_dict(
    usage: Usage, *, reasoning_tokens: int | None = None, cached_tokens: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    if reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return out


def tool_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def chat_completion(
    *,
    id: str,
    model: str,
    content: str | None,
    finish_reason: str,
    usage: Usage | None,
    tool_calls: Sequence[dict[str, Any]] = (),
    reasoning: str | None = None,
    extra_message: Mapping[str, Any] | None = None,
    usage_extra: Mapping[str, Any] | None = None,
) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = list(tool_calls)
    if reasoning:
        message["reasoning_content"] = reasoning
    if extra_message:
        message.update(extra_message)
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = {**usage_dict(usage), **(usage_extra or {})}
    return orjson.dumps(body)


def text_completion(*, id: str, model: str, text: str, finish_reason: str, usage: Usage | None) -> bytes:
    body: dict[str, Any] = {
        "id": id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        body["usage"] = usage_dict(usage)
    return orjson.dumps(body)


def embeddings(body: Mapping[str, Any], vectors: Sequence[Sequence[float]], model: str, usage: Usage | None) -> bytes:
    """OpenAI's embeddings list; base64 (little-endian float32, the openai SDK's default request)
    when the client asked for it."""
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, vector in enumerate(vectors):
        value: Any = vector
        if as_base64:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": value})
    usage = usage or Usage()
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
        }
    )


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadRequest("input must be a string or a non-empty list of strings", param="input")


# --- streams -----------------------------------------------------------------------------------


class ChunkWriter:
    """Builds OpenAI `chat.completion.chunk` SSE events for one response."""

    def __init__(self, model: str, *, include_usage: bool, id: str | None = None) -> None:
        self.id = id or new_id()
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self._started = False
        self._others: set[int] = set()  # choices after the first that have had their first chunk
        self.finished = False
        self._envelope = b""
        self._envelope_key: tuple[str, str] | None = None

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def delta(
        self, delta: dict[str, Any], finish_reason: str | None = None, *, choice: int = 0, logprobs: Any = None
    ) -> bytes:
        """One chunk for choice `choice` (n > 1 answers have several); the first of each choice
        carries the role."""
        if choice == 0 and not self._started:
            self._started = True
            delta = {"role": "assistant", **delta}
        elif choice and choice not in self._others:
            self._others.add(choice)
            delta = {"role": "assistant", **delta}
        return self._event([{"index": choice, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}])

    def start(self) -> bytes:
        """The opening chunk (role, empty content) clients like to see first."""
        return b"" if self._started else self.delta({"content": ""})

    def text(self, text: str, choice: int = 0) -> bytes:
        if choice:
            return self.delta({"content": text}, choice=choice) if text else b""
        return self._text_delta(b"content", text) if text else b""

    def reasoning(self, text: str, choice: int = 0) -> bytes:
        if choice:
            return self.delta({"reasoning_content": text}, choice=choice) if text else b""
        return self._text_delta(b"reasoning_content", text) if text else b""

    def _text_delta(self, field: bytes, text: str) -> bytes:
        """The most frequent chunk by far, spliced from a cached envelope instead of re-encoded."""
        if not self._started:
            return self.delta({field.decode(): text})
        key = (self.id, self.model)
        if self._envelope_key != key:
            head = orjson.dumps({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                                 "model": self.model})[:-1]  # fmt: skip
            self._envelope = b"data: " + head + b',"choices":[{"index":0,"delta":{"'
            self._envelope_key = key
        return self._envelope + field + b'":' + orjson.dumps(text) + b'},"logprobs":null,"finish_reason":null}]}\n\n'

    def tool_start(self, index: int, call_id: str, name: str, arguments: str = "", choice: int = 0) -> bytes:
        return self.delta({"tool_calls": [{"index": index, **tool_call(call_id, name, arguments)}]}, choice=choice)

    def tool_arguments(self, index: int, arguments: str) -> bytes:
        if not arguments:
            return b""
        return self.delta({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})

    def finish(self, reason: str, choice: int = 0) -> bytes:
        self.finished = True
        return self.delta({}, reason, choice=choice)

    def end(self, usage: Usage | None, **usage_extra: Any) -> bytes:
        """The usage chunk (when the client asked for it) and [DONE]."""
        if self.include_usage and usage is not None:
            return self._event([], {**usage_dict(usage), **usage_extra}) + DONE
        return DONE
