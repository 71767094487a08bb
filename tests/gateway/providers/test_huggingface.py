"""The Hugging Face adapter: router answers pass through as bytes, TGI's dialect is repaired."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.gateway.providers.helpers import SPLITS, accumulate, chunks_of, make_call, run_stream
from tests.wire import load

from seance.gateway.providers.base import Reply
from seance.gateway.providers.huggingface import HuggingFace

ADAPTER = HuggingFace()


def call(body: dict[str, Any], base: str, model: str = "meta-llama/Llama-3.1-8B-Instruct", **kw: Any) -> Any:
    return make_call("chat", body, provider="huggingface", model=model, api_base=ADAPTER.normalize_base(base), **kw)


def test_router_answer_passes_through_untouched() -> None:
    (exchange,) = load("huggingface/router-chat-nonstream-hyperbolic.httprr.txt")
    c = call(
        exchange.request_json(), "https://router.huggingface.co/hyperbolic/v1", model="deepseek-ai/DeepSeek-R1-0528"
    )
    request = ADAPTER.build(c)
    assert request.url == exchange.url and request.body == c.raw
    assert request.headers["authorization"] == "Bearer test-key"
    reply = ADAPTER.parse(c, 200, exchange.response_body)
    assert isinstance(reply, Reply) and reply.body is exchange.response_body  # not even copied
    assert reply.usage is not None and reply.usage.total_tokens == 63


def test_tgi_nonstream_gets_an_id() -> None:
    exchange = load("huggingface/tgi-chat-nonstream.yaml")[1]
    base = "https://router.huggingface.co/hf-inference/models/meta-llama/Llama-3.1-8B-Instruct"
    c = call(exchange.request_json(), base)
    assert ADAPTER.build(c).url == exchange.url  # a bare TGI base gets /v1
    reply = ADAPTER.parse(c, 200, exchange.response_body)
    assert isinstance(reply, Reply)
    data = orjson.loads(reply.body)
    recorded = exchange.response_json()
    assert recorded["id"] == "" and data["id"].startswith("chatcmpl-")
    assert data["choices"] == recorded["choices"] and data["usage"] == recorded["usage"]


@pytest.mark.parametrize("mode", SPLITS)
def test_tgi_stream_gets_one_id(mode: str) -> None:
    exchange = load("huggingface/tgi-chat-stream.yaml")[1]
    c = call({**exchange.request_json(), "stream": True}, "http://tgi.local:8080")
    chunks = chunks_of(run_stream(ADAPTER.stream(c), exchange.response_body, mode))
    ids = {chunk["id"] for chunk in chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    result = accumulate(chunks)
    recorded = [orjson.loads(line[6:]) for line in exchange.response_body.split(b"\n\n") if line.startswith(b"data: {")]
    assert result["content"] == "".join(r["choices"][0]["delta"]["content"] for r in recorded)
    assert result["finish_reason"] == "length"


@pytest.mark.parametrize("index", [0, 1])
def test_legacy_tgi_tool_calls(index: int) -> None:
    exchange = load("huggingface/tgi-chat-tools-legacy.yaml")[index]
    c = call(
        exchange.request_json(), "https://api-inference.huggingface.co/models/meta-llama/Meta-Llama-3-70B-Instruct"
    )
    reply = ADAPTER.parse(c, 200, exchange.response_body)
    assert isinstance(reply, Reply)
    data = orjson.loads(reply.body)
    assert data["object"] == "chat.completion" and data["id"]
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (tool,) = choice["message"]["tool_calls"]
    recorded = exchange.response_json()["choices"][0]["message"]["tool_calls"][0]["function"]
    assert tool["id"] == "call_0" and tool["type"] == "function"
    assert tool["function"] == {"name": recorded["name"], "arguments": orjson.dumps(recorded["arguments"]).decode()}
    assert choice["message"]["content"] is None


@pytest.mark.parametrize("mode", SPLITS)
def test_router_stream_bytes_pass_through(mode: str) -> None:
    exchange = load("together/chat-stream-via-hf-router.yaml")[1]
    c = call({**exchange.request_json(), "stream": True}, "https://router.huggingface.co/together/v1")
    out = run_stream(ADAPTER.stream(c), exchange.response_body, mode)
    assert accumulate(chunks_of(out)) == accumulate(chunks_of(exchange.response_body))
    if b'"eos"' not in exchange.response_body:
        assert out == exchange.response_body


def test_legacy_serverless_404_is_a_clear_error() -> None:
    (exchange,) = load("huggingface/legacy-inference-api-404.httprr.txt")
    err = ADAPTER.error(call({}, "https://api-inference.huggingface.co"), 404, exchange.response_headers,
                        exchange.response_body)  # fmt: skip
    assert err.status == 404 and "Not Found" in err.message
