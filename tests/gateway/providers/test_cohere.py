"""The Cohere v2 adapter against the recorded Chat and Embed traffic."""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson
import pytest
from tests.gateway.providers.helpers import BERLIN, SPLITS, WEATHER_TOOL, accumulate, chunks_of, make_call, run_stream
from tests.wire import load

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.providers.base import Reply
from seance.gateway.providers.cohere import Cohere

ADAPTER = Cohere()
BASE = ADAPTER.normalize_base("https://api.cohere.com/v2")


def call(body: dict[str, Any], op: Any = "chat", model: str = "command-a-03-2025", **kwargs: Any) -> Any:
    return make_call(op, body, provider="cohere", model=model, api_base=BASE, **kwargs)


def sent(c: Any, path: str = "/v2/chat") -> Any:
    request = ADAPTER.build(c)
    assert request.url == "https://api.cohere.com" + path
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body is not None
    return orjson.loads(request.body)


def completion(c: Any, body: bytes) -> dict[str, Any]:
    reply = ADAPTER.parse(c, 200, body)
    assert isinstance(reply, Reply)
    data: dict[str, Any] = orjson.loads(reply.body)
    return data


def tool_round(call_id: str) -> list[dict[str, Any]]:
    arguments = '{"latitude":"52.5200","longitude":"13.4050"}'
    return [
        {"role": "assistant", "content": "",
         "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id,
         "content": "Current weather at 52.5200, 13.4050: 15°C, Wind: 10 km/h"},
    ]  # fmt: skip


def test_chat_basic() -> None:
    (exchange,) = load("cohere/chat-v2-nonstream.yaml")
    c = call({"model": "x", "messages": [{"role": "user", "content": "What's 2 + 2?"}]})
    assert sent(c) == exchange.request_json()
    data = completion(c, exchange.response_body)
    assert data["id"] == "bed99e63-72a3-45ce-8e0c-152eb1fc25dc"
    assert data["choices"][0]["message"]["content"] == "2 + 2 equals 4."
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": 503, "completion_tokens": 11, "total_tokens": 514}


def test_chat_tools_round_trip_with_citations() -> None:
    first, second = load("cohere/chat-v2-nonstream-tools.yaml")
    messages: list[dict[str, Any]] = [{"role": "user", "content": BERLIN}]
    c = call({"model": "x", "messages": messages, "tools": [WEATHER_TOOL]})
    assert sent(c) == first.request_json()
    choice = completion(c, first.response_body)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "I will use the weather tool to find the weather in Berlin."
    (tool,) = choice["message"]["tool_calls"]
    assert tool["id"] == "weather_cgvndtjtzzkh" and tool["function"]["name"] == "weather"
    assert orjson.loads(tool["function"]["arguments"]) == {"latitude": "52.5200", "longitude": "13.4050"}
    c = call({"model": "x", "messages": messages + tool_round("weather_cgvndtjtzzkh"), "tools": [WEATHER_TOOL]})
    assert sent(c) == second.request_json()
    message = completion(c, second.response_body)["choices"][0]["message"]
    assert message["content"] == "The current weather in Berlin is 15°C with winds of 10 km/h."
    assert message["citations"][0]["text"] == "15°C with winds of 10 km/h."


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_text(mode: str) -> None:
    (exchange,) = load("cohere/chat-v2-stream.yaml")
    body = {"model": "x", "messages": [{"role": "user", "content": "Count from 1 to 3"}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    c = call(body)
    assert sent(c) == exchange.request_json()
    translator = ADAPTER.stream(c)
    result = accumulate(chunks_of(run_stream(translator, exchange.response_body, mode)))
    assert result["content"] == "Sure! Here's counting from 1 to 3:\n\n1, 2, 3." and result["finish_reason"] == "stop"
    assert result["usage"]["prompt_tokens"] == 502 and result["usage"]["completion_tokens"] == 24
    assert translator.usage is not None and translator.usage.total_tokens == 526


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_tools_two_rounds(mode: str) -> None:
    exchanges = load("cohere/chat-v2-stream-tools.yaml")
    first = exchanges[0]
    c = call({"model": "x", "messages": [{"role": "user", "content": BERLIN}], "tools": [WEATHER_TOOL], "stream": True})
    assert sent(c) == first.request_json()
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), first.response_body, mode)))
    assert result["finish_reason"] == "tool_calls"
    assert result["content"] == "I will use the weather tool to find the weather in Berlin."
    (tool,) = result["tool_calls"]
    assert (tool["id"], tool["name"]) == ("weather_vvavrb8p34fk", "weather")
    assert orjson.loads(tool["arguments"]) == {"latitude": "52.5200", "longitude": "13.4050"}
    assert result["usage"] is None
    messages = [{"role": "user", "content": BERLIN}, *tool_round("weather_vvavrb8p34fk")]
    second = exchanges[1]
    c = call({"model": "x", "messages": messages, "tools": [WEATHER_TOOL], "stream": True})
    assert sent(c) == second.request_json()
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), second.response_body, mode)))
    assert result["content"].startswith("The current weather in Berlin is 15°C")
    assert result["finish_reason"] == "stop" and not result["tool_calls"]
    for later in exchanges[2:]:  # the second tool round: tool call then answer, same shapes
        result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), later.response_body, mode)))
        assert result["finish_reason"] in ("tool_calls", "stop")


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_thinking_and_citations(mode: str) -> None:
    (exchange,) = load("cohere/chat-v2-stream-citations.yaml")
    documents = exchange.request_json()["documents"]
    body = {"model": "x", "messages": [{"role": "user", "content": "Who created Ruby? Use the document."}],
            "documents": documents, "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    c = call(body, model="command-a-plus-05-2026")
    assert sent(c) == exchange.request_json()
    chunks = chunks_of(run_stream(ADAPTER.stream(c), exchange.response_body, mode))
    result = accumulate(chunks)
    assert result["reasoning"].startswith("The document clearly states that Ruby was created by Yukihiro Matsumoto")
    assert "Yukihiro Matsumoto" in result["content"] and result["content"].endswith("happy and productive.")
    citations = [c for ch in chunks for choice in ch["choices"] for c in choice["delta"].get("citations", [])]
    assert citations[0]["text"] == "Yukihiro Matsumoto"
    assert result["usage"]["completion_tokens"] == 86


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embed(encoding: str) -> None:
    (exchange,) = load("cohere/embed-v2.yaml")
    body = {"model": "x", "input": "Ruby is a programmer's best friend", "dimensions": 1024,
            "encoding_format": encoding}  # fmt: skip
    c = call(body, op="embedding", model="embed-v4.0")
    assert sent(c, "/v2/embed") == exchange.request_json()
    reply = ADAPTER.parse(c, 200, exchange.response_body)
    assert isinstance(reply, Reply) and reply.usage is not None and reply.usage.prompt_tokens == 7
    data = orjson.loads(reply.body)
    recorded = exchange.response_json()["embeddings"]["float"][0]
    vector = data["data"][0]["embedding"]
    if encoding == "base64":
        vector = list(struct.unpack(f"<{len(recorded)}f", base64.b64decode(vector)))
        assert vector == pytest.approx(recorded, rel=1e-6)
    else:
        assert vector == recorded
    assert len(vector) == 1024 and data["usage"]["prompt_tokens"] == 7


def test_text_before_a_tool_call_goes_back_as_the_tool_plan() -> None:
    call_id = "weather_cgvndtjtzzkh"
    messages = [{"role": "user", "content": BERLIN}, *tool_round(call_id)]
    messages[1] = {**messages[1], "content": "I will use the weather tool."}
    request = sent(call({"model": "x", "messages": messages, "tools": [WEATHER_TOOL]}))
    assistant = request["messages"][1]
    assert assistant["tool_plan"] == "I will use the weather tool." and "content" not in assistant
    assert assistant["tool_calls"][0]["id"] == call_id


def test_unsupported_param_and_cut_stream() -> None:
    with pytest.raises(BadRequest) as caught:
        ADAPTER.build(call({"model": "x", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"1": 1}}))
    assert caught.value.param == "logit_bias" and "cohere" in caught.value.message
    (exchange,) = load("cohere/chat-v2-stream.yaml")
    translator = ADAPTER.stream(call({"model": "x", "messages": [], "stream": True}))
    translator.feed(exchange.response_body[:500])
    with pytest.raises(UpstreamError):
        translator.close()


def test_error_body_message() -> None:
    err = ADAPTER.error(call({}), 400, {}, b'{"id":"x","message":"invalid request: model not found"}')
    assert err.status == 400 and "model not found" in err.message


def test_stream_error_after_text_arrives_after_the_text() -> None:
    (exchange,) = load("cohere/chat-v2-stream.yaml")
    head = exchange.response_body.split(b"event: content-end")[0]
    translator = ADAPTER.stream(call({"model": "x", "messages": [], "stream": True}))
    out = translator.feed(head + b'event: error\ndata: {"type": "error", "message": "internal error"}\n\n')
    assert b'"content":"Sure' in out
    with pytest.raises(UpstreamError) as caught:
        translator.close()
    assert "internal error" in caught.value.message
