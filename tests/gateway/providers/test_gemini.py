"""The Gemini adapter against the recorded generateContent, streamGenerateContent and
batchEmbedContents traffic."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.gateway.providers.helpers import BERLIN, SPLITS, WEATHER_TOOL, accumulate, chunks_of, make_call, run_stream
from tests.wire import load

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.providers.base import Reply
from seance.gateway.providers.gemini import Gemini

ADAPTER = Gemini()
BASE = ADAPTER.normalize_base("https://generativelanguage.googleapis.com/v1beta/")
PREFIX = "https://generativelanguage.googleapis.com/v1beta/models/"
RESULT = [{"type": "text", "text": "Current weather at 52.5200, 13.4050: 15°C, Wind: 10 km/h"}]


def call(body: dict[str, Any], op: Any = "chat", model: str = "gemini-2.5-flash", **kwargs: Any) -> Any:
    return make_call(op, body, provider="gemini", model=model, api_base=BASE, **kwargs)


def lower_types(value: Any) -> Any:
    """Gemini takes schema types in either case; the recorder wrote them upper-case."""
    if isinstance(value, dict):
        return {k: v.lower() if k == "type" and isinstance(v, str) else lower_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_types(v) for v in value]
    return value


def sent(c: Any, url: str) -> Any:
    request = ADAPTER.build(c)
    assert request.url == PREFIX + url
    assert request.headers["x-goog-api-key"] == "test-key"
    assert request.body is not None
    return lower_types(orjson.loads(request.body))


def parsed(c: Any, body: bytes) -> dict[str, Any]:
    reply = ADAPTER.parse(c, 200, body)
    assert isinstance(reply, Reply)
    data: dict[str, Any] = orjson.loads(reply.body)
    return data


def test_generate_content() -> None:
    (exchange,) = load("gemini/generate-content.yaml")
    c = call({"model": "g", "messages": [{"role": "user", "content": "What's 2 + 2?"}]})
    assert sent(c, "gemini-2.5-flash:generateContent") == exchange.request_json()
    data = parsed(c, exchange.response_body)
    assert data["id"] == "Cr-FaqLbNpfYkdUP-bmpoAw"
    assert data["choices"][0]["message"]["content"] == "2 + 2 = **4**"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] == 10
    assert data["usage"]["completion_tokens"] == 31 and data["usage"]["total_tokens"] == 41  # 8 + 23 thinking
    assert data["usage"]["completion_tokens_details"] == {"reasoning_tokens": 23}


def test_function_call_round_trip_keeps_the_thought_signature() -> None:
    first, second = load("gemini/generate-content-tools.yaml")
    messages: list[dict[str, Any]] = [{"role": "user", "content": BERLIN}]
    c = call({"model": "g", "messages": messages, "tools": [WEATHER_TOOL]})
    assert sent(c, "gemini-2.5-flash:generateContent") == lower_types(first.request_json())
    choice = parsed(c, first.response_body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (tool,) = choice["message"]["tool_calls"]
    assert tool["function"]["name"] == "weather"
    assert orjson.loads(tool["function"]["arguments"]) == {"latitude": "52.5200", "longitude": "13.4050"}
    messages += [choice["message"], {"role": "tool", "tool_call_id": tool["id"], "content": RESULT}]
    c = call({"model": "g", "messages": messages, "tools": [WEATHER_TOOL]})
    assert sent(c, "gemini-2.5-flash:generateContent") == lower_types(second.request_json())
    answer = parsed(c, second.response_body)["choices"][0]["message"]["content"]
    assert answer == "The weather in Berlin is 15°C, with wind at 10 km/h."


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_sse(mode: str) -> None:
    (exchange,) = load("gemini/stream-generate-content-sse.yaml")
    body = {"model": "g", "messages": [{"role": "user", "content": "Count from 1 to 3"}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    c = call(body)
    assert sent(c, "gemini-2.5-flash:streamGenerateContent?alt=sse") == exchange.request_json()
    translator = ADAPTER.stream(c)
    result = accumulate(chunks_of(run_stream(translator, exchange.response_body, mode)))
    assert result["content"] == "1, 2, 3" and result["finish_reason"] == "stop"
    assert (result["usage"]["prompt_tokens"], result["usage"]["completion_tokens"]) == (8, 27)
    assert translator.usage is not None and translator.usage.total_tokens == 35


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_tools_multi_turn(mode: str) -> None:
    exchanges = load("gemini/stream-generate-content-sse-tools.yaml")
    messages: list[dict[str, Any]] = [{"role": "user", "content": BERLIN}]
    c = call({"model": "g", "messages": messages, "tools": [WEATHER_TOOL], "stream": True})
    url = "gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert sent(c, url) == lower_types(exchanges[0].request_json())
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), exchanges[0].response_body, mode)))
    assert result["finish_reason"] == "tool_calls"
    (tool,) = result["tool_calls"]
    assert orjson.loads(tool["arguments"]) == {"latitude": "52.5200", "longitude": "13.4050"}
    assistant = {"role": "assistant", "content": None,
                 "tool_calls": [{"id": tool["id"], "type": "function",
                                 "function": {"name": tool["name"], "arguments": tool["arguments"]}}]}  # fmt: skip
    messages += [assistant, {"role": "tool", "tool_call_id": tool["id"], "content": RESULT}]
    c = call({"model": "g", "messages": messages, "tools": [WEATHER_TOOL], "stream": True})
    assert sent(c, url) == lower_types(exchanges[1].request_json())
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), exchanges[1].response_body, mode)))
    assert result["content"] == "The weather in Berlin is 15°C with a wind of 10 km/h."
    for later in exchanges[2:]:
        assert accumulate(chunks_of(run_stream(ADAPTER.stream(c), later.response_body, mode)))["finish_reason"]


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_thinking(mode: str) -> None:
    (exchange,) = load("gemini/stream-generate-content-sse-thinking.yaml")
    body = {"model": "g", "messages": [{"role": "user", "content": "q"}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    c = call(body, model="gemini-3-flash-preview")
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), exchange.response_body, mode)))
    assert result["reasoning"].startswith("**Pondering Mirror Queries**")
    assert result["content"] and "**Pondering" not in result["content"]
    last = orjson.loads(exchange.response_body.strip().split(b"\r\n\r\n")[-1].removeprefix(b"data: "))
    meta = last["usageMetadata"]
    assert result["usage"]["prompt_tokens"] == meta["promptTokenCount"]
    assert result["usage"]["total_tokens"] == meta["totalTokenCount"]


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_json_array(mode: str) -> None:
    """Without alt=sse Gemini streams one JSON array; the translator reads that too."""
    exchange = load("gemini/stream-generate-content-json-array-tools.yaml")[0]
    c = call({"model": "g", "messages": [{"role": "user", "content": "x"}], "stream": True})
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), exchange.response_body, mode)))
    assert result["reasoning"].startswith("**Generating Pelican Names**")
    assert [t["name"] for t in result["tool_calls"]] == ["pelican_name_generator"]
    assert result["tool_calls"][0]["arguments"] == "{}" and result["finish_reason"] == "tool_calls"


def test_batch_embed_contents() -> None:
    (exchange,) = load("gemini/batch-embed-contents.yaml")
    body = {
        "model": "g",
        "input": ["Ruby is a programmer's best friend"],
        "dimensions": 768,
        "encoding_format": "float",
    }
    c = call(body, op="embedding", model="gemini-embedding-001")
    assert sent(c, "gemini-embedding-001:batchEmbedContents") == exchange.request_json()
    data = parsed(c, exchange.response_body)
    assert data["data"][0]["embedding"] == exchange.response_json()["embeddings"][0]["values"]
    assert len(data["data"][0]["embedding"]) == 768


def test_request_options() -> None:
    body = {"model": "g", "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}],
            "max_tokens": 5, "stop": ["x"], "temperature": 0.1, "reasoning_effort": "low", "tool_choice": "required",
            "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}}  # fmt: skip
    request = sent(call(body), "gemini-2.5-flash:generateContent")
    assert request["systemInstruction"] == {"parts": [{"text": "sys"}]}
    assert request["generationConfig"] == {
        "temperature": 0.1, "maxOutputTokens": 5, "stopSequences": ["x"], "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"}, "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
    }  # fmt: skip
    assert request["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    with pytest.raises(BadRequest):
        ADAPTER.build(call({**body, "logit_bias": {"1": 1}}))


def test_errors_and_cut_stream() -> None:
    body = b'{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}'
    err = ADAPTER.error(call({}), 400, {}, body)
    assert err.status == 400 and "API key not valid." in err.message
    (exchange,) = load("gemini/stream-generate-content-sse-thinking.yaml")
    translator = ADAPTER.stream(call({"model": "g", "messages": [], "stream": True}))
    translator.feed(exchange.response_body[:3000])
    with pytest.raises(UpstreamError):
        translator.close()
    translator = ADAPTER.stream(call({"model": "g", "messages": [], "stream": True}))
    with pytest.raises(UpstreamError):
        translator.feed(b'data: {"error": {"code": 503, "message": "overloaded"}}\r\n\r\n')


def test_blocked_prompt_is_a_content_filter_finish() -> None:
    blocked = b'{"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}'
    data = parsed(call({"model": "g", "messages": [{"role": "user", "content": "x"}]}), blocked)
    assert data["choices"][0]["finish_reason"] == "content_filter"
    assert data["choices"][0]["message"]["content"] == "" and data["usage"]["prompt_tokens"] == 7
