"""The native Ollama adapter against the recorded /api/chat, /api/generate and /api/embed traffic."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.gateway.providers.helpers import SPLITS, accumulate, chunks_of, make_call, run_stream
from tests.sse_reference import SSEDecoder
from tests.wire import load

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.providers.base import Reply
from seance.gateway.providers.ollama_chat import OllamaChat

ADAPTER = OllamaChat()
BASE = ADAPTER.normalize_base("http://localhost:11434/")


def call(body: dict[str, Any], op: Any = "chat", **kwargs: Any) -> Any:
    return make_call(op, body, provider="ollama_chat", model="gemma3:1b", api_base=BASE, api_key=None, **kwargs)


def without_client_quirks(body: dict[str, Any]) -> dict[str, Any]:
    """langchaingo sends empty format/system/template strings, which Ollama ignores."""
    return {k: v for k, v in body.items() if v != ""}


def sent(c: Any, path: str) -> Any:
    request = ADAPTER.build(c)
    assert request.url == "http://localhost:11434" + path and "authorization" not in request.headers
    assert request.body is not None
    return orjson.loads(request.body)


@pytest.mark.parametrize("mode", SPLITS)
def test_chat_stream(mode: str) -> None:
    (exchange,) = load("ollama/native-chat-stream.httprr.txt")
    body = {"model": "o", "messages": [{"role": "user", "content": "Count from 1 to 5"}], "stream": True,
            "max_tokens": 50, "temperature": 0, "stream_options": {"include_usage": True}}  # fmt: skip
    c = call(body)
    assert sent(c, "/api/chat") == without_client_quirks(exchange.request_json())
    translator = ADAPTER.stream(c)
    result = accumulate(chunks_of(run_stream(translator, exchange.response_body, mode)))
    lines = [orjson.loads(line) for line in exchange.response_body.splitlines()]
    assert result["content"] == "".join(line["message"]["content"] for line in lines)
    assert result["content"].startswith("Okay, here we go!\n\n1, 2, 3")
    assert result["finish_reason"] == ("length" if lines[-1]["done_reason"] == "length" else "stop")
    assert result["usage"]["prompt_tokens"] == lines[-1]["prompt_eval_count"]
    assert result["usage"]["completion_tokens"] == lines[-1]["eval_count"]
    assert translator.usage is not None


def test_chat_format_json_and_ndjson_folded_when_not_streaming() -> None:
    (exchange,) = load("ollama/native-chat-stream-by-default.httprr.txt")
    body = {"model": "o", "temperature": 0, "response_format": {"type": "json_object"},
            "messages": [{"role": "user", "content": exchange.request_json()["messages"][0]["content"]}]}  # fmt: skip
    c = call(body)
    request = sent(c, "/api/chat")
    assert request.pop("stream") is False  # explicit: Ollama streams by default
    assert request == exchange.request_json()
    reply = ADAPTER.parse(c, 200, exchange.response_body)
    assert isinstance(reply, Reply)
    data = orjson.loads(reply.body)
    assert orjson.loads(data["choices"][0]["message"]["content"]) == {"answer": "600"}
    assert data["usage"] == {"prompt_tokens": 25, "completion_tokens": 9, "total_tokens": 34}


def test_generate_as_completion() -> None:
    (exchange,) = load("ollama/native-generate-nonstream.httprr.txt")
    c = call({"model": "o", "prompt": "Hello, how are you?", "max_tokens": 100, "temperature": 0}, op="completion")
    assert sent(c, "/api/generate") == without_client_quirks(exchange.request_json())
    reply = ADAPTER.parse(c, 200, exchange.response_body)
    assert isinstance(reply, Reply)
    data = orjson.loads(reply.body)
    assert data["object"] == "text_completion"
    assert data["choices"][0]["text"] == exchange.response_json()["response"]
    assert data["usage"]["prompt_tokens"] == 15 and data["usage"]["completion_tokens"] == 65


def test_generate_stream_as_completion_chunks() -> None:
    (exchange,) = load("ollama/native-chat-stream.httprr.txt")
    lines = [orjson.loads(line) for line in exchange.response_body.splitlines()]
    generate = b""
    for line in lines:
        line["response"] = line.pop("message")["content"]
        generate += orjson.dumps(line) + b"\n"
    body = {"model": "o", "prompt": "count", "stream": True, "stream_options": {"include_usage": True}}
    c = call(body, op="completion")
    out = run_stream(ADAPTER.stream(c), generate, "random")
    events = SSEDecoder().feed(out)
    assert events[-1].data == "[DONE]"
    chunks = [orjson.loads(e.data) for e in events[:-1]]
    assert "".join(ch["choices"][0]["text"] for ch in chunks if ch["choices"]).startswith("Okay, here we go!")
    assert chunks[-1]["usage"]["completion_tokens"] == lines[-1]["eval_count"]


def test_embed() -> None:
    (exchange,) = load("ollama/native-embed.httprr.txt")
    c = call({"model": "o", "input": "Hello world"}, op="embedding")
    request = sent(c, "/api/embed")
    assert request == {k: v for k, v in exchange.request_json().items() if k != "options"} | {"model": "gemma3:1b"}
    reply = ADAPTER.parse(c, 200, exchange.response_body)
    assert isinstance(reply, Reply)
    data = orjson.loads(reply.body)
    assert data["data"][0]["embedding"] == exchange.response_json()["embeddings"][0]
    assert data["usage"]["prompt_tokens"] == 2


@pytest.mark.parametrize("mode", SPLITS)
def test_tool_calls_and_thinking_in_a_stream(mode: str) -> None:
    # Ollama sends a whole tool call in one line, with arguments as an object.
    lines = [
        {"model": "q", "message": {"role": "assistant", "content": "", "thinking": "Need weather."}, "done": False},
        {"model": "q", "message": {"role": "assistant", "content": "",
                                   "tool_calls": [{"function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
         "done": False},
        {"model": "q", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
         "prompt_eval_count": 30, "eval_count": 12},
    ]  # fmt: skip
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    c = call({"model": "o", "messages": [{"role": "user", "content": "w?"}], "stream": True})
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), data, mode)))
    assert result["reasoning"] == "Need weather." and result["finish_reason"] == "tool_calls"
    (tool,) = result["tool_calls"]
    assert tool["name"] == "weather" and orjson.loads(tool["arguments"]) == {"city": "Paris"} and tool["id"]


def test_request_translation_and_errors() -> None:
    body = {"model": "o", "stop": "x", "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "see"},
                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD"}}]},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}]},
                         {"role": "tool", "tool_call_id": "1", "content": "ok"}]}  # fmt: skip
    request = sent(call(body), "/api/chat")
    assert request["messages"][0] == {"role": "user", "content": "see", "images": ["QUJD"]}
    assert request["messages"][1]["tool_calls"] == [{"function": {"name": "f", "arguments": {"a": 1}}}]
    assert request["messages"][2] == {"role": "tool", "content": "ok", "tool_name": "f"}
    assert request["options"] == {"stop": ["x"]} and request["tools"] == body["tools"]
    with pytest.raises(BadRequest):
        ADAPTER.build(call({"model": "o", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 1}}))
    translator = ADAPTER.stream(call({"model": "o", "messages": [], "stream": True}))
    with pytest.raises(UpstreamError):
        translator.feed(b'{"error":"model \\"nope\\" not found, try pulling it first"}\n')
    translator = ADAPTER.stream(call({"model": "o", "messages": [], "stream": True}))
    translator.feed(b'{"model":"m","message":{"role":"assistant","content":"hi"},"done":false}\n')
    with pytest.raises(UpstreamError):
        translator.close()
    err = ADAPTER.error(call({}), 404, {}, b'{"error":"model \\"nope\\" not found, try pulling it first"}')
    assert err.status == 404 and "try pulling it" in err.message
