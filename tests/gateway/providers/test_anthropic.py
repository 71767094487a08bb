"""The Anthropic adapter against the recorded Messages API traffic."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.gateway.providers.helpers import SPLITS, accumulate, chunks_of, make_call, run_stream
from tests.sse_reference import SSEDecoder
from tests.wire import load

from seance.gateway.errors import BadRequest, RateLimited, UpstreamError
from seance.gateway.providers.anthropic import Anthropic
from seance.gateway.providers.base import Reply

ADAPTER = Anthropic()
BASE = ADAPTER.normalize_base("https://api.anthropic.com/v1/")
MODEL = "claude-haiku-4-5-20251001"
WEATHER_PARAMS = {
    "type": "object",
    "properties": {
        "latitude": {"type": "string", "description": "Latitude (e.g., 52.5200)"},
        "longitude": {"type": "string", "description": "Longitude (e.g., 13.4050)"},
    },
    "required": ["latitude", "longitude"],
    "additionalProperties": False,
    "strict": True,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "weather", "description": "Gets current weather for a location", "parameters": WEATHER_PARAMS},
}
BERLIN = "What's the weather in Berlin? (52.5200, 13.4050)"


def chat(body: dict[str, Any], model: str = MODEL, **kwargs: Any) -> Any:
    return make_call("chat", body, provider="anthropic", model=model, api_base=BASE, **kwargs)


def sent(call: Any) -> dict[str, Any]:
    request = ADAPTER.build(call)
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.headers["x-api-key"] == "test-key"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body is not None
    body: dict[str, Any] = orjson.loads(request.body)
    return body


def recorded(exchange: Any) -> dict[str, Any]:
    body: dict[str, Any] = exchange.request_json()
    if body.get("stream") is False:
        del body["stream"]  # false is the default
    return body


def tool_round(call_id: str, lat: str, lon: str) -> list[dict[str, Any]]:
    arguments = orjson.dumps({"latitude": lat, "longitude": lon}).decode()
    return [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id,
         "content": f"Current weather at {lat}, {lon}: 15°C, Wind: 10 km/h"},
    ]  # fmt: skip


def test_basic_request_and_response() -> None:
    (exchange,) = load("anthropic/messages-nonstream.yaml")
    call = chat({"model": "claude", "messages": [{"role": "user", "content": "What's 2 + 2?"}], "max_tokens": 64000})
    assert sent(call) == recorded(exchange)
    reply = ADAPTER.parse(call, 200, exchange.response_body)
    assert isinstance(reply, Reply)
    body = orjson.loads(reply.body)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "2 + 2 = 4"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 16 and body["usage"]["completion_tokens"] == 13
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (16, 13)


def test_tool_round_trip() -> None:
    first, second = load("anthropic/messages-nonstream-tools.yaml")
    messages: list[dict[str, Any]] = [{"role": "user", "content": BERLIN}]
    call = chat({"model": "c", "messages": messages, "max_tokens": 64000, "tools": [WEATHER_TOOL]})
    assert sent(call) == recorded(first)
    reply = ADAPTER.parse(call, 200, first.response_body)
    assert isinstance(reply, Reply)
    choice = orjson.loads(reply.body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (tool_call,) = choice["message"]["tool_calls"]
    assert tool_call["id"] == "toolu_01Ay5KzhmQYMK53svGLaAxfc"
    assert tool_call["function"]["name"] == "weather"
    assert orjson.loads(tool_call["function"]["arguments"]) == {"latitude": "52.5200", "longitude": "13.4050"}
    assert choice["message"]["content"] is None

    messages += tool_round("toolu_01Ay5KzhmQYMK53svGLaAxfc", "52.5200", "13.4050")
    call = chat({"model": "c", "messages": messages, "max_tokens": 64000, "tools": [WEATHER_TOOL]})
    assert sent(call) == recorded(second)
    reply = ADAPTER.parse(call, 200, second.response_body)
    assert isinstance(reply, Reply)
    assert orjson.loads(reply.body)["choices"][0]["message"]["content"].startswith("The weather in Berlin")


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_text(mode: str) -> None:
    (exchange,) = load("anthropic/messages-stream-text.yaml")
    body = {"model": "c", "messages": [{"role": "user", "content": "Say just hello"}], "max_tokens": 8192,
            "temperature": 1.0, "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    call = chat(body)
    assert sent(call) == recorded(exchange)
    translator = ADAPTER.stream(call)
    result = accumulate(chunks_of(run_stream(translator, exchange.response_body, mode)))
    assert result["content"] == "Hello" and result["finish_reason"] == "stop"
    assert result["roles"] == ["assistant"]
    assert result["usage"]["prompt_tokens"] == 10 and result["usage"]["completion_tokens"] == 4
    assert translator.usage is not None and translator.usage.total_tokens == 14


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_tools_two_rounds(mode: str) -> None:
    exchanges = load("anthropic/messages-stream-tools.yaml")
    messages: list[dict[str, Any]] = [{"role": "user", "content": BERLIN}]
    expected = [
        ("tool_calls", "toolu_01MKSN7NHsBVKr7Jvw5pqCQq", ("52.5200", "13.4050"), 633, 75),
        ("stop", "The weather in Berlin is currently:", None, 748, 49),
        ("tool_calls", "toolu_01WyBDTrFVoidP92YhrB1xZ2", ("48.8575", "2.3514"), 819, 75),
        ("stop", "The weather in Paris is currently:", None, 934, 53),
    ]
    for exchange, (finish, marker, coords, prompt, completion) in zip(exchanges, expected, strict=True):
        body = {"model": "c", "messages": list(messages), "max_tokens": 64000, "tools": [WEATHER_TOOL],
                "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
        call = chat(body)
        assert sent(call) == recorded(exchange)
        result = accumulate(chunks_of(run_stream(ADAPTER.stream(call), exchange.response_body, mode)))
        assert result["finish_reason"] == finish
        assert (result["usage"]["prompt_tokens"], result["usage"]["completion_tokens"]) == (prompt, completion)
        if coords:
            (tool,) = result["tool_calls"]
            assert (tool["id"], tool["name"]) == (marker, "weather")
            assert orjson.loads(tool["arguments"]) == {"latitude": coords[0], "longitude": coords[1]}
            messages += tool_round(marker, *coords)
        else:
            assert result["content"].startswith(marker) and not result["tool_calls"]
            messages += [{"role": "assistant", "content": result["content"]}]
            if finish == "stop" and len(messages) == 4:
                messages.append({"role": "user", "content": "What's the weather in Paris? (48.8575, 2.3514)"})


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_thinking(mode: str) -> None:
    (exchange,) = load("anthropic/messages-stream-thinking.yaml")
    body = {"model": "c", "messages": [{"role": "user", "content": "Two names for a pet pelican, be brief"}],
            "max_tokens": 8192, "temperature": 1.0, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "stream": True}  # fmt: skip
    call = chat(body, model="claude-sonnet-4-5")
    assert sent(call) == recorded(exchange)
    out = run_stream(ADAPTER.stream(call), exchange.response_body, mode)
    chunks = chunks_of(out)
    result = accumulate(chunks)
    assert result["content"] == "- Captain\n- Scoop"
    assert result["reasoning"].startswith("The user wants two names for a pet pelican")
    signatures = [b["signature"] for c in chunks for ch in c["choices"] for b in ch["delta"].get("thinking_blocks", [])]
    assert len("".join(signatures)) == 512
    assert result["usage"] is None  # the client did not ask for include_usage


def test_response_format_uses_a_forced_tool_and_returns_content() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = {"model": "c", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}  # fmt: skip
    call = chat(body)
    request = sent(call)
    assert request["max_tokens"] == 4096  # the default when the client sent none
    assert request["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    assert request["tools"][0]["input_schema"] == schema
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL, "stop_reason": "tool_use",
              "content": [{"type": "tool_use", "id": "t", "name": "json_tool_call", "input": {"a": 1}}],
              "usage": {"input_tokens": 3, "output_tokens": 2}}  # fmt: skip
    reply = ADAPTER.parse(call, 200, orjson.dumps(answer))
    assert isinstance(reply, Reply)
    choice = orjson.loads(reply.body)["choices"][0]
    assert choice["message"]["content"] == '{"a":1}' and choice["finish_reason"] == "stop"


def test_request_translation_details() -> None:
    body = {
        "model": "c", "stop": "END", "user": "u1", "tool_choice": "required", "parallel_tool_calls": False,
        "tools": [WEATHER_TOOL], "reasoning_effort": "low",
        "messages": [
            {"role": "system", "content": "be terse"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                                         {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
        ],
    }  # fmt: skip
    request = sent(chat(body))
    assert request["system"] == [{"type": "text", "text": "be terse"}]
    assert request["messages"][0]["content"][1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}  # fmt: skip
    assert request["messages"][0]["content"][2]["source"] == {"type": "url", "url": "https://x/y.png"}
    assert request["stop_sequences"] == ["END"]
    assert request["metadata"] == {"user_id": "u1"}
    assert request["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert request["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert request["max_tokens"] == 1024 + 4096  # room for the answer after the thinking
    assert sent(chat({**body, "max_tokens": 2000}))["max_tokens"] == 2000  # the client's own is kept


def test_unsupported_param_is_named_unless_dropped() -> None:
    body = {"model": "c", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 2}}
    with pytest.raises(BadRequest) as caught:
        ADAPTER.build(chat(body))
    assert caught.value.param == "logit_bias" and "anthropic" in caught.value.message
    assert "logit_bias" not in sent(chat(body, extra={"drop_params": True}))
    quiet = {**body, "logit_bias": {}, "seed": None, "n": 1, "logprobs": False, "presence_penalty": 0}
    assert "seed" not in sent(chat(quiet))  # values that ask for nothing are not refused
    with pytest.raises(BadRequest) as caught:
        ADAPTER.build(chat({**quiet, "n": 2}))
    assert caught.value.param == "n"


def test_errors() -> None:
    overloaded = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    err = ADAPTER.error(chat({}), 529, {}, overloaded)
    assert isinstance(err, UpstreamError) and err.status == 503 and err.retryable and "Overloaded" in err.message
    limited = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'
    err = ADAPTER.error(chat({}), 429, {"retry-after": "7", "x-other": "1"}, limited)
    assert isinstance(err, RateLimited) and err.status == 429 and dict(err.headers) == {"retry-after": "7"}
    bad = b'{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too big"}}'
    err = ADAPTER.error(chat({}), 400, {}, bad)
    assert err.status == 400 and "max_tokens: too big" in err.message


def test_mid_stream_error_event_raises() -> None:
    (exchange,) = load("anthropic/messages-stream-text.yaml")
    head = exchange.response_body.split(b"event: content_block_stop")[0]
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    translator = ADAPTER.stream(chat({"model": "c", "messages": [], "stream": True}))
    assert b"Hello" in translator.feed(head)
    with pytest.raises(UpstreamError) as caught:
        translator.feed(error)
    assert caught.value.status == 503


def test_cut_stream_raises() -> None:
    (exchange,) = load("anthropic/messages-stream-text.yaml")
    translator = ADAPTER.stream(chat({"model": "c", "messages": [], "stream": True}))
    translator.feed(exchange.response_body[:400])
    with pytest.raises(UpstreamError):
        translator.close()


@pytest.mark.parametrize("mode", SPLITS)
def test_native_messages_pass_through(mode: str) -> None:
    exchange = load("anthropic/messages-stream-tools.yaml")[0]
    raw = exchange.request_body.replace(MODEL.encode(), b"my-claude")
    body = orjson.loads(raw)
    call = make_call("messages", body, provider="anthropic", model=MODEL, api_base=BASE,
                     client_headers={"anthropic-version": "2023-06-01", "anthropic-beta": "tools-2024"})  # fmt: skip
    request = ADAPTER.build(call)
    assert request.stream and request.headers["anthropic-beta"] == "tools-2024"
    assert request.body is not None and orjson.loads(request.body) == exchange.request_json()
    translator = ADAPTER.stream(call)
    assert run_stream(translator, exchange.response_body, mode) == exchange.response_body
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.completion_tokens) == (633, 75)
    events = SSEDecoder().feed(exchange.response_body)
    assert events[-1].event == "message_stop"


def test_native_messages_non_stream_returns_bytes_unchanged() -> None:
    (exchange,) = load("anthropic/messages-nonstream.yaml")
    call = make_call("messages", exchange.request_json(), provider="anthropic", model=MODEL, api_base=BASE)
    request = ADAPTER.build(call)
    assert request.body == call.raw  # same model: the client's bytes go as they came
    reply = ADAPTER.parse(call, 200, exchange.response_body)
    assert isinstance(reply, Reply) and reply.body == exchange.response_body
    assert reply.usage is not None and reply.usage.total_tokens == 29


def test_count_tokens_request() -> None:
    body = {"model": "my-claude", "messages": [{"role": "user", "content": "hi"}], "system": "be brief"}
    call = make_call("messages", body, provider="anthropic", model=MODEL, api_base=BASE,
                     client_headers={"anthropic-beta": "token-counting-2024-11-01"})  # fmt: skip
    request = ADAPTER.count_tokens(call)
    assert request.url == "https://api.anthropic.com/v1/messages/count_tokens" and request.method == "POST"
    assert request.headers["anthropic-beta"] == "token-counting-2024-11-01"
    assert orjson.loads(request.body or b"") == {**body, "model": MODEL}


@pytest.mark.parametrize("mode", SPLITS)
def test_json_mode_stream_comes_out_as_content(mode: str) -> None:
    body = {"model": "c", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "response_format": {"type": "json_object"}}  # fmt: skip
    call = chat(body)
    assert sent(call)["tool_choice"] == {"type": "tool", "name": "json_tool_call"}
    events = [
        ("message_start", {"message": {"id": "msg_1", "model": MODEL, "usage": {"input_tokens": 5}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "json_tool_call",
                                                                "input": {}}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": '{"a":'}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta", "partial_json": " 1}"}}),
        ("content_block_stop", {"index": 0}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}}),
        ("message_stop", {}),
    ]  # fmt: skip
    stream = b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"
        for name, data in events
    )
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(call), stream, mode)))
    assert result["content"] == '{"a": 1}' and not result["tool_calls"] and result["finish_reason"] == "stop"
