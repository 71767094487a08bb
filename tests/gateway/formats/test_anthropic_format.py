"""The /v1/messages front door's translations, checked with the anthropic SDK's own parsing."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2 as httpx  # the http client the anthropic SDK is built on here
import orjson
import pytest
from tests.gateway.providers.helpers import SPLITS, make_call, splits
from tests.wire import load

from seance.gateway.errors import BadRequest, GatewayError, RateLimited, UpstreamError
from seance.gateway.formats import anthropic as anthropic_format
from seance.gateway.formats.anthropic import messages, stream
from seance.gateway.providers.anthropic import Anthropic


def sdk_stream_message(events: bytes) -> Any:
    """The Message the anthropic SDK builds from an event stream (its own accumulator)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=events)

    client = anthropic.Anthropic(api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    with client.messages.stream(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as stream:
        for _ in stream:
            pass
        return stream.get_final_message()


def translate(sse: bytes, mode: str) -> bytes:
    translator = stream.OpenAIToAnthropicStream()
    out = b"".join(translator.feed(piece) for piece in splits(sse, mode))
    return out + translator.close()


def test_request_with_every_feature() -> None:
    body = {
        "model": "claude-x", "max_tokens": 100, "system": [{"type": "text", "text": "be brief"}],
        "stop_sequences": ["END"], "temperature": 0.2, "metadata": {"user_id": "u"}, "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "weather", "description": "w", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "calling"},
                {"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "sunny"}]},
                {"type": "text", "text": "and now?"}]},
        ],
    }  # fmt: skip
    chat = messages.to_openai_request(body)
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "look"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": "calling",
         "tool_calls": [{"id": "t1", "type": "function",
                         "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}],
         "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}]},
        {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        {"role": "user", "content": "and now?"},
    ]  # fmt: skip
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "weather", "parameters": {"type": "object"}, "description": "w"}}]  # fmt: skip
    assert chat["tool_choice"] == "required" and chat["parallel_tool_calls"] is False
    assert (chat["stop"], chat["max_tokens"], chat["temperature"]) == (["END"], 100, 0.2)
    assert "user" not in chat and "metadata" not in chat
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["thinking"] == {"type": "enabled", "budget_tokens": 1024} and "reasoning_effort" not in chat


def test_recorded_anthropic_request_survives_both_translations() -> None:
    """Anthropic → OpenAI (front door) → Anthropic (adapter) gives back the recorded request."""
    exchange = load("anthropic/messages-stream-tools.yaml")[3]
    original = exchange.request_json()
    chat = messages.to_openai_request(original)
    call = make_call("chat", chat, provider="anthropic", model=original["model"], api_base="https://api.anthropic.com")
    request = Anthropic().build(call)
    assert request.body is not None
    rebuilt = orjson.loads(request.body)
    assert rebuilt == original


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}, "messages.0.role"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
          "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools.0.type"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
          "tool_choice": {"type": "maybe"}}, "tool_choice.type"),
    ],
)  # fmt: skip
def test_malformed_requests_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(BadRequest) as caught:
        messages.to_openai_request(body)
    assert caught.value.message.startswith(field + ":")


def test_response_with_parallel_tool_calls_validates_in_the_sdk() -> None:
    first, second = load("openai/chat-nonstream-parallel-tools.yaml")
    message = anthropic.types.Message.model_validate(
        orjson.loads(messages.from_openai_response(first.response_body, "claude-x"))
    )
    assert message.model == "claude-x" and message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.id for u in uses] == ["call_jpE40AW1quMaiDYWNV4Aob6D", "call_AZ51gEeXi37kKhFpXrcJzNQl"]
    assert uses[0].input == {"location": "San Francisco"}
    assert (message.usage.input_tokens, message.usage.output_tokens) == (70, 46)
    text = anthropic.types.Message.model_validate(
        orjson.loads(messages.from_openai_response(second.response_body, "claude-x"))
    )
    assert text.content[0].type == "text" and text.content[0].text.startswith("The weather in both")
    assert text.stop_reason == "end_turn"


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_of_text_reaches_the_sdk(mode: str) -> None:
    (exchange,) = load("openai/chat-stream-include-usage.httprr.txt")
    message = sdk_stream_message(translate(exchange.response_body, mode))
    assert message.content[0].text == "1, 2, 3, 4, 5"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (14, 13)


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_of_tool_call_deltas_reaches_the_sdk(mode: str) -> None:
    exchange = load("openai/chat-stream-tools-include-usage.yaml")[0]
    message = sdk_stream_message(translate(exchange.response_body, mode))
    (use,) = message.content
    assert use.type == "tool_use" and use.id == "call_1EYWDzueHEp8OsB8jJSEp7WB" and use.name == "multiply"
    assert use.input == {"a": 1231, "b": 2331}
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("mode", SPLITS)
def test_anthropic_stream_through_both_translators_is_what_anthropic_sent(mode: str) -> None:
    """Anthropic events → OpenAI chunks (adapter) → Anthropic events (front door) keeps the message."""
    exchange = load("anthropic/messages-stream-thinking.yaml")[0]
    call = make_call("chat", {"model": "c", "messages": [], "stream": True, "stream_options": {"include_usage": True}},
                     provider="anthropic", model="claude-sonnet-4-5", api_base="")  # fmt: skip
    adapter_stream = Anthropic().stream(call)
    chunks = b"".join(adapter_stream.feed(p) for p in splits(exchange.response_body, mode)) + adapter_stream.close()
    message = sdk_stream_message(translate(chunks, mode))
    original = sdk_stream_message(exchange.response_body)
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == original.content[0].thinking
    assert message.content[0].signature == original.content[0].signature
    assert message.content[1].text == original.content[1].text
    assert message.usage.input_tokens == original.usage.input_tokens == 46
    assert message.usage.output_tokens == original.usage.output_tokens == 84


def test_groq_mid_stream_error_becomes_an_anthropic_error_event() -> None:
    exchange = load("groq/chat-stream-tools-tool-use-failed.yaml")[0]
    out = translate(exchange.response_body, "random")
    assert out.startswith(b"event: message_start")
    assert out.rstrip().split(b"\n\n")[-1].startswith(b"event: error")
    with pytest.raises(anthropic.APIStatusError) as caught:
        sdk_stream_message(out)
    assert "Tool call validation failed" in str(caught.value)


def test_cut_stream_is_an_error_not_a_silent_end() -> None:
    (exchange,) = load("openai/chat-stream-include-usage.httprr.txt")
    translator = stream.OpenAIToAnthropicStream()
    translator.feed(exchange.response_body[:700])
    with pytest.raises(UpstreamError):
        translator.close()


@pytest.mark.parametrize(
    ("err", "kind"),
    [
        (BadRequest("bad"), "invalid_request_error"),
        (RateLimited("slow"), "rate_limit_error"),
        (UpstreamError("down", upstream_status=500), "api_error"),
        (GatewayError("busy", status=503), "overloaded_error"),
        (UpstreamError("no key", upstream_status=401), "authentication_error"),
    ],
)
def test_error_shapes(err: GatewayError, kind: str) -> None:
    body = orjson.loads(anthropic_format.error_body(err))
    assert body == {"type": "error", "error": {"type": kind, "message": err.message}}
    event = anthropic_format.error_event(err)
    assert event.startswith(b"event: error\ndata: ") and event.endswith(b"\n\n")
