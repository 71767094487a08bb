"""context_window_fallbacks and content_policy_fallbacks: a refusal of that kind goes to them at
once (no retry, no cooldown), in place of the group's other fallbacks; without them it is the answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request
from tests.gateway.routing.test_router import CHAT, OK, by_host

from seance.gateway.upstream.mock import MockResponse

TOO_LONG = MockResponse(400, orjson.dumps({"error": {
    "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
    "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}))  # fmt: skip
FILTERED = MockResponse(400, orjson.dumps({"type": "error", "error": {
    "type": "invalid_request_error", "message": "Output blocked by content filtering policy"}}))  # fmt: skip
ANTHROPIC_OK = orjson.dumps({
    "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 1}})  # fmt: skip


def _config(**settings: Any) -> dict[str, Any]:
    return {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://a.test", model_info={"id": "a1"}),
            deployment("gpt", "openai/gpt-4o", api_base="http://a2.test", model_info={"id": "a2"}),
            deployment("big", "openai/gpt-4.1", api_base="http://big.test"),
            deployment("other", "openai/gpt-4o-mini", api_base="http://other.test"),
            deployment("claude", "anthropic/claude-haiku-4-5", api_base="http://claude.test"),
        ],
        "litellm_settings": {"num_retries": 2, "fallbacks": [{"gpt": ["other"]}, {"claude": ["other"]}], **settings},
    }


def _hosts(transport: Any) -> list[str]:
    return [r.url.split("/")[2] for r in transport.requests]


def test_a_context_window_refusal_goes_to_the_context_window_fallbacks_only(tmp_path: Path) -> None:
    answers = {"a.test": TOO_LONG, "a2.test": TOO_LONG, "big.test": MockResponse(200, OK),
               "other.test": MockResponse(200, OK)}  # fmt: skip
    config = _config(context_window_fallbacks=[{"gpt": ["big"]}])
    app, transport = make_app(tmp_path, config, by_host(answers))
    for _ in range(5):  # never cooled down: a refusal is the request's doing, not the deployment's
        transport.requests.clear()
        result = request(app, "POST", "/v1/chat/completions", CHAT)
        assert result.status == 200 and result.headers["x-litellm-attempted-fallbacks"] == "1"
        hosts = _hosts(transport)
        assert hosts[0] in ("a.test", "a2.test") and hosts[1:] == ["big.test"]  # not retried, not "other"
        assert result.headers["x-litellm-attempted-retries"] == "0"


def test_without_context_window_fallbacks_the_refusal_is_the_answer(tmp_path: Path) -> None:
    answers = {"a.test": TOO_LONG, "a2.test": TOO_LONG, "other.test": MockResponse(200, OK)}
    app, transport = make_app(tmp_path, _config(), by_host(answers))
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 400 and "maximum context length" in result.json()["error"]["message"]
    assert len(transport.requests) == 1  # the ordinary fallbacks would refuse it too, or answer another question


def test_a_content_policy_refusal_goes_to_the_content_policy_fallbacks(tmp_path: Path) -> None:
    answers = {"claude.test": FILTERED, "big.test": MockResponse(200, OK), "other.test": MockResponse(200, OK)}
    config = _config(content_policy_fallbacks=[{"claude": ["big"]}], context_window_fallbacks=[{"claude": ["other"]}])
    app, transport = make_app(tmp_path, config, by_host(answers))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "claude"})
    assert result.status == 200 and _hosts(transport) == ["claude.test", "big.test"]


def test_router_settings_take_the_refusal_fallbacks_too(tmp_path: Path) -> None:
    answers = {"a.test": TOO_LONG, "a2.test": TOO_LONG, "big.test": MockResponse(200, OK)}
    config = _config()
    config["router_settings"] = {"context_window_fallbacks": [{"gpt": ["big"]}]}
    app, transport = make_app(tmp_path, config, by_host(answers))
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 200 and _hosts(transport)[-1] == "big.test"


@pytest.mark.parametrize(
    ("flag", "setting"),
    [("mock_testing_context_window_fallbacks", "context_window_fallbacks"),
     ("mock_testing_content_policy_fallbacks", "content_policy_fallbacks")],
)  # fmt: skip
def test_mock_testing_refusal_fallbacks(tmp_path: Path, flag: str, setting: str) -> None:
    answers = {"a.test": MockResponse(200, OK), "a2.test": MockResponse(200, OK), "big.test": MockResponse(200, OK)}
    app, transport = make_app(tmp_path, _config(**{setting: [{"gpt": ["big"]}]}), by_host(answers))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, flag: True})
    assert result.status == 200 and _hosts(transport) == ["big.test"]
    assert flag not in orjson.loads(transport.requests[0].body or b"")
    # without the setting, the mocked refusal is the answer
    app, transport = make_app(tmp_path, _config(), by_host(answers))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, flag: True})
    assert result.status == 400 and transport.requests == []


def test_mock_response_context_window_error_is_a_refusal(tmp_path: Path) -> None:
    app, transport = make_app(tmp_path, _config(context_window_fallbacks=[{"gpt": ["big"]}]),
                              lambda r: MockResponse(200, OK))  # fmt: skip
    body = {**CHAT, "mock_response": "litellm.ContextWindowExceededError"}
    result = request(app, "POST", "/v1/chat/completions", body)
    # every try fails so, the fallback's too (LiteLLM's mock_response applies to every call)
    assert result.status == 400 and result.headers.get("x-litellm-attempted-fallbacks") == "1"
    assert transport.requests == []
