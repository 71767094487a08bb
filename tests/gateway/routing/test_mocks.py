"""LiteLLM's testing fields answer or fail without a provider: mock_response (text, or a LiteLLM
exception name), mock_testing_fallbacks, mock_testing_rate_limit_error."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request
from tests.sse_reference import SSEDecoder

from seance.gateway.upstream.mock import MockResponse

OK = b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"real"},"finish_reason":"stop"}]}'  # noqa: E501
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
NO_KEY = {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o"}}  # no key anywhere


def test_mock_response_answers_without_a_provider_or_its_key(tmp_path: Path) -> None:
    app, transport = make_app(tmp_path, {"model_list": [NO_KEY]}, lambda r: MockResponse(200, OK))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "mock_response": "Hello there"})
    body = result.json()
    assert result.status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello there"
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}
    assert transport.requests == []


def test_mock_response_streams(tmp_path: Path) -> None:
    app, transport = make_app(tmp_path, {"model_list": [NO_KEY]}, lambda r: MockResponse(200, OK))
    body = {**CHAT, "mock_response": "one two three", "stream": True}
    result = request(app, "POST", "/v1/chat/completions", body)
    events = SSEDecoder().feed(result.body)
    assert events[-1].data == "[DONE]"
    text = "".join(orjson.loads(e.data)["choices"][0]["delta"].get("content") or ""
                   for e in events[:-1] if orjson.loads(e.data)["choices"])  # fmt: skip
    assert text == "one two three" and transport.requests == []


@pytest.mark.parametrize("stream", [False, True])
def test_mock_response_on_the_anthropic_front(tmp_path: Path, stream: bool) -> None:
    config = {"model_list": [{"model_name": "claude", "litellm_params": {"model": "anthropic/claude-haiku-4-5"}}]}
    app, transport = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    body = {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
            "mock_response": "Hi from a mock", "stream": stream}  # fmt: skip
    result = request(app, "POST", "/v1/messages", body)
    assert result.status == 200 and transport.requests == []
    if not stream:
        message = result.json()
        assert message["content"] == [{"type": "text", "text": "Hi from a mock"}]
        assert message["usage"] == {"input_tokens": 10, "output_tokens": 20}
        return
    events = SSEDecoder().feed(result.body)
    kinds = [e.event for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    text = "".join(orjson.loads(e.data)["delta"].get("text", "") for e in events if e.event == "content_block_delta")
    assert text == "Hi from a mock"


def test_mock_response_with_a_litellm_exception_name_fails_like_a_provider(tmp_path: Path) -> None:
    config = {"model_list": [NO_KEY], "litellm_settings": {"num_retries": 0}}
    app, _ = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "mock_response": "litellm.RateLimitError"})
    assert result.status == 429


def test_mock_testing_fallbacks_fails_the_requested_group_and_calls_the_fallback(tmp_path: Path) -> None:
    config = {
        "model_list": [deployment("gpt", "openai/gpt-4o", api_base="http://a.test"),
                       deployment("backup", "openai/gpt-4o-mini", api_base="http://b.test")],
        "litellm_settings": {"num_retries": 0, "fallbacks": [{"gpt": ["backup"]}]},
    }  # fmt: skip
    app, transport = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "mock_testing_fallbacks": True})
    assert result.status == 200 and result.headers["x-litellm-attempted-fallbacks"] == "1"
    assert [r.url for r in transport.requests] == ["http://b.test/chat/completions"]
    assert "mock_testing_fallbacks" not in orjson.loads(transport.requests[0].body or b"")


def test_a_mock_flag_that_is_not_a_boolean_is_refused(tmp_path: Path) -> None:
    app, transport = make_app(tmp_path, {"model_list": [NO_KEY]}, lambda r: MockResponse(200, OK))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "mock_testing_fallbacks": "yes"})
    assert result.status == 400 and result.json()["error"]["param"] == "mock_testing_fallbacks"
    assert transport.requests == []
