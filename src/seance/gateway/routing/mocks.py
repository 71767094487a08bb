"""LiteLLM's testing fields: answer or fail without calling the provider.

    mock_response: "text"                   the answer, in the shape of the call (chat, a stream, a
                                            text completion, Anthropic's message), usage 10 + 20
    mock_response: "litellm.RateLimitError" a provider's failure of that kind (429, 500, 504, …)
    mock_testing_fallbacks: true            the requested group fails (retryable), its fallbacks
                                            are tried for real: to test a fallback configuration
    mock_testing_rate_limit_error: true     the requested group answers 429
    mock_testing_context_window_fallbacks: true   the requested group refuses the request as too long
                                            for its context window: its context_window_fallbacks
                                            are tried
    mock_testing_content_policy_fallbacks: true   the same with a content-policy refusal and
                                            content_policy_fallbacks

The router asks `plan()` once per request; nothing here runs for requests without these fields.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from seance.gateway.errors import (
    CONTENT_POLICY,
    CONTEXT_WINDOW,
    BadRequest,
    GatewayError,
    RateLimited,
    Unauthorized,
    UpstreamError,
    UpstreamTimeout,
)
from seance.gateway.formats import openai as shapes
from seance.gateway.formats.anthropic import message_id
from seance.gateway.formats.anthropic.stream import OpenAIToAnthropicStream
from seance.gateway.providers.base import Call, Reply, StreamTranslator, Usage
from seance.gateway.routing.proxy import Stream

USAGE = Usage(10, 20)  # what LiteLLM's mock answers report
FIELDS = (
    "mock_response", "mock_testing_fallbacks", "mock_testing_rate_limit_error",
    "mock_testing_context_window_fallbacks", "mock_testing_content_policy_fallbacks",
)  # fmt: skip

# LiteLLM's exception names, as mock_response values, to the failure a provider would cause
# (and the refusal's kind, for the two that have fallbacks of their own)
KINDS = {
    "litellm.ContextWindowExceededError": CONTEXT_WINDOW,
    "litellm.ContentPolicyViolationError": CONTENT_POLICY,
}
ERRORS: dict[str, tuple[type[GatewayError], int | None]] = {
    "litellm.RateLimitError": (RateLimited, None),
    "litellm.InternalServerError": (UpstreamError, 500),
    "litellm.ServiceUnavailableError": (UpstreamError, 503),
    "litellm.APIConnectionError": (UpstreamError, None),
    "litellm.APIError": (UpstreamError, None),
    "litellm.Timeout": (UpstreamTimeout, None),
    "litellm.BadRequestError": (UpstreamError, 400),
    "litellm.AuthenticationError": (Unauthorized, None),
    "litellm.NotFoundError": (UpstreamError, 404),
    "litellm.ContextWindowExceededError": (UpstreamError, 400),
    "litellm.ContentPolicyViolationError": (UpstreamError, 400),
}


@dataclass(frozen=True, slots=True)
class Mock:
    text: str | None  # the answer; None: only the failures below
    error: GatewayError | None  # every try fails so (mock_response: "litellm.…")
    first_group_error: GatewayError | None  # only the requested group fails so

    def fail(self, first_group: bool) -> None:
        if self.error is not None:
            raise self.error
        if first_group and self.first_group_error is not None:
            raise self.first_group_error

    def reply(self, call: Call) -> Reply:
        text = self._text(call)
        model = call.target.model
        if call.op == "completion":
            body = shapes.text_completion(id=shapes.new_id("cmpl-"), model=model, text=text, finish_reason="stop",
                                          usage=USAGE)  # fmt: skip
        elif call.op == "messages":
            body = orjson.dumps({
                "id": message_id(shapes.new_id()), "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": USAGE.prompt_tokens, "output_tokens": USAGE.completion_tokens},
            })  # fmt: skip
        else:
            body = shapes.chat_completion(id=shapes.new_id(), model=model, content=text, finish_reason="stop",
                                          usage=USAGE)  # fmt: skip
        return Reply(body, USAGE)

    def stream(self, call: Call) -> Stream:
        text = self._text(call)
        if call.op not in ("chat", "messages"):
            raise BadRequest("mock_response streams chat completions and messages only", param="mock_response")
        usage_chunk = shapes.include_usage(call.body) or call.op == "messages"
        writer = shapes.ChunkWriter(call.target.model, include_usage=usage_chunk)
        chunks = writer.start() + b"".join(writer.text(word) for word in _words(text))
        chunks += writer.finish("stop") + writer.end(USAGE)
        if call.op == "messages":  # Anthropic's events, made the way the front door makes them
            events = OpenAIToAnthropicStream(call.target.model)
            chunks = events.feed(chunks) + events.close()
        return Stream(_chunks(chunks), _Counted())

    def _text(self, call: Call) -> str:
        if self.text is None:
            raise BadRequest("mock_response must be a string", param="mock_response")
        return self.text


def plan(fields: Mapping[str, Any]) -> Mock | None:
    """The mock a request asks for, if any."""
    if not any(name in fields for name in FIELDS):
        return None
    text: str | None = None
    error: GatewayError | None = None
    response = fields.get("mock_response")
    if isinstance(response, str) and response in ERRORS:
        kind, status = ERRORS[response]
        message = f"mock_response: {response}"
        error = UpstreamError(message, upstream_status=status) if kind is UpstreamError else kind(message)
        error.kind = KINDS.get(response)
    elif isinstance(response, str):
        text = response
    elif response is not None:
        raise BadRequest("mock_response must be a string", param="mock_response")
    for name in FIELDS[1:]:
        if name in fields and not isinstance(fields[name], bool):
            raise BadRequest(f"{name} must be true or false", param=name)
    first: GatewayError | None = None
    if fields.get("mock_testing_fallbacks") is True:
        first = UpstreamError("mock_testing_fallbacks: the requested model failed", upstream_status=500)
    elif fields.get("mock_testing_rate_limit_error") is True:
        first = RateLimited("mock_testing_rate_limit_error: the requested model is rate limited")
    elif fields.get("mock_testing_context_window_fallbacks") is True:
        first = _refusal(
            "mock_testing_context_window_fallbacks: the request exceeds the context window", CONTEXT_WINDOW
        )
    elif fields.get("mock_testing_content_policy_fallbacks") is True:
        first = _refusal("mock_testing_content_policy_fallbacks: refused by the content policy", CONTENT_POLICY)
    return Mock(text, error, first)


def _refusal(message: str, kind: str) -> GatewayError:
    error = UpstreamError(message, upstream_status=400, code="context_length_exceeded" if kind == CONTEXT_WINDOW
                          else "content_policy_violation")  # fmt: skip
    error.kind = kind
    return error


def _words(text: str) -> list[str]:
    """The text in a few pieces, as a model streams it."""
    pieces = text.split(" ")
    return [piece + " " for piece in pieces[:-1]] + [pieces[-1]] if pieces else [text]


async def _chunks(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


class _Counted(StreamTranslator):
    def __init__(self) -> None:
        self.usage = USAGE

    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> bytes:
        return b""
