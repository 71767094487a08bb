"""text-completion-codestral/: an OpenAI completions request as Mistral's FIM request
(/v1/fim/completions), the chat-shaped answer back as a text_completion — through the real gateway
and the openai SDK, the loopback upstream asserting exactly what Mistral would receive. The FIM
answers are made from Mistral's documented shapes (no recording of this endpoint exists)."""

from __future__ import annotations

import orjson
import pytest
from tests.gateway.conftest import GatewayFactory, deployment
from tests.gateway.providers.helpers import make_call
from tests.wire import ReplayUpstream, Reply

from seance.gateway.errors import BadRequest
from seance.gateway.providers import load_adapter

FIM_ANSWER = {
    "id": "5b35cc2e69bf4ba9a11373ee1f1937f8", "object": "chat.completion", "model": "codestral-latest",
    "created": 1718966624,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "    return n * factorial(n - 1)",
                                         "tool_calls": None, "prefix": False}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}  # fmt: skip


def _chunk(delta: dict[str, object], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    chunk: dict[str, object] = {"id": "s1", "object": "chat.completion.chunk", "created": 1,
                                "model": "codestral-latest",
                                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
    if usage:
        chunk["usage"] = usage
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


FIM_STREAM = [
    _chunk({"role": "assistant", "content": ""}), _chunk({"content": "    return "}),
    _chunk({"content": "n * factorial(n - 1)"}),
    _chunk({"content": ""}, "stop", {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}),
    b"data: [DONE]\n\n",
]  # fmt: skip


def test_build_is_a_fim_request() -> None:
    adapter = load_adapter("text-completion-codestral")
    assert adapter is not None
    body = {"model": "m", "prompt": ["def f(n):"], "suffix": "print(f(3))", "max_tokens": 64, "seed": 7,
            "temperature": 0.1, "user": "u"}  # fmt: skip
    call = make_call("completion", body, provider="text-completion-codestral", model="codestral-latest",
                     api_base=adapter.normalize_base("https://codestral.mistral.ai/v1/fim/completions"))  # fmt: skip
    request = adapter.build(call)
    assert request.url == "https://codestral.mistral.ai/v1/fim/completions"
    assert orjson.loads(request.body or b"") == {
        "model": "codestral-latest", "prompt": "def f(n):", "stream": False, "suffix": "print(f(3))",
        "temperature": 0.1, "max_tokens": 64, "random_seed": 7,
    }  # fmt: skip
    with pytest.raises(BadRequest) as caught:
        adapter.build(make_call("completion", {"model": "m", "prompt": "x", "echo": True},
                                provider="text-completion-codestral", model="c", api_base="https://x/v1"))  # fmt: skip
    assert caught.value.param == "echo"


def test_completions_through_the_gateway(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        served = gateway({"model_list": [deployment("codestral", "text-completion-codestral/codestral-latest",
                                                    upstream.url + "/v1/fim/completions")]})  # fmt: skip
        upstream.add("/v1/fim/completions", Reply(200, {"content-type": "application/json"}, orjson.dumps(FIM_ANSWER)))
        completion = served.openai().completions.create(
            model="codestral", prompt="def factorial(n):\n", suffix="print(factorial(5))", max_tokens=32, seed=1
        )
        received = upstream.requests[-1]
        assert received.path == "/v1/fim/completions" and received.headers["authorization"] == "Bearer sk-up"
        assert received.json() == {"model": "codestral-latest", "prompt": "def factorial(n):\n", "stream": False,
                                   "suffix": "print(factorial(5))", "max_tokens": 32, "random_seed": 1}  # fmt: skip
        assert completion.object == "text_completion"
        assert completion.choices[0].text == "    return n * factorial(n - 1)"
        assert completion.choices[0].finish_reason == "stop"
        assert completion.usage is not None and completion.usage.total_tokens == 21


def test_a_streamed_completion_through_the_gateway(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        served = gateway({"model_list": [deployment("codestral", "text-completion-codestral/codestral-latest",
                                                    upstream.url + "/v1")]})  # fmt: skip
        upstream.add("/v1/fim/completions", Reply(200, {"content-type": "text/event-stream"}, chunks=FIM_STREAM))
        stream = served.openai().completions.create(model="codestral", prompt="def factorial(n):\n", stream=True)
        chunks = list(stream)
        assert upstream.requests[-1].json()["stream"] is True
        assert "".join(c.choices[0].text for c in chunks if c.choices) == "    return n * factorial(n - 1)"
        assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
        assert all(c.object == "text_completion" for c in chunks)


def test_chat_is_not_served(gateway: GatewayFactory) -> None:
    with ReplayUpstream() as upstream:
        served = gateway({"model_list": [deployment("codestral", "text-completion-codestral/codestral-latest",
                                                    upstream.url + "/v1")]})  # fmt: skip
        with served.http() as http:
            body = {"model": "codestral", "messages": [{"role": "user", "content": "hi"}]}
            response = http.post("/v1/chat/completions", json=body)
        assert response.status_code == 400 and "chat completions is not offered" in response.text
