"""LiteLLM's gateway-level request fields steer the gateway and never reach a provider (which would
answer 400 "Unrecognized request argument"); those whose absence would surprise are refused."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request

from seance.gateway.context import GATEWAY_FIELDS, RequestContext
from seance.gateway.pipeline import Hook
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

OK = b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}]}'  # noqa: E501
ANTHROPIC_OK = b'{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"yo"}],"model":"claude-haiku-4-5","stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}'  # noqa: E501
STEERING = {
    "metadata": {"user": "u1", "trace_id": "t"}, "tags": ["team-a"], "fallbacks": ["gpt"], "num_retries": 3,
    "timeout": 30, "caching": True, "cache": {"no-cache": True}, "drop_params": True,
}  # fmt: skip


def answer(_: UpstreamRequest) -> MockResponse:
    return MockResponse(200, OK)


def test_gateway_fields_are_read_and_never_forwarded(tmp_path: Path) -> None:
    seen: list[object] = []

    class Recorder(Hook):
        async def after(self, ctx: RequestContext) -> None:
            seen.append(dict(ctx.gateway_fields))

    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, answer, [Recorder()])
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2, **STEERING}
    result = request(app, "POST", "/v1/chat/completions", body)
    assert result.status == 200
    sent = orjson.loads(transport.requests[0].body or b"")
    assert sent == {"model": "gpt-4o", "messages": body["messages"], "temperature": 0.2}
    assert seen == [STEERING]


def test_routing_fields_from_the_client_are_dropped(tmp_path: Path) -> None:
    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, answer)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}],
            "api_base": "http://evil.test", "api_key": "sk-stolen", "custom_llm_provider": "x"}  # fmt: skip
    assert request(app, "POST", "/v1/chat/completions", body).status == 200
    (sent,) = transport.requests
    assert sent.url.startswith("http://up.test/") and sent.headers["authorization"] == "Bearer sk-up"
    assert b"evil" not in (sent.body or b"") and b"stolen" not in (sent.body or b"")


@pytest.mark.parametrize("field", ["mock_timeout", "mock_testing_context_window_fallbacks", "guardrails"])
def test_fields_whose_absence_would_surprise_are_refused(tmp_path: Path, field: str) -> None:
    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, answer)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], field: "x"}
    result = request(app, "POST", "/v1/chat/completions", body)
    assert result.status == 400 and result.json()["error"]["param"] == field
    assert transport.requests == []


def test_anthropic_metadata_is_anthropics_own_field(tmp_path: Path) -> None:
    def anthropic(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, ANTHROPIC_OK)

    app, transport = make_app(tmp_path, {"model_list": [deployment("claude", "anthropic/claude-haiku-4-5")]}, anthropic)
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"user_id": "u-1"}, "tags": ["t"]}  # fmt: skip
    assert request(app, "POST", "/v1/messages", body).status == 200
    sent = orjson.loads(transport.requests[0].body or b"")
    assert sent["metadata"] == {"user_id": "u-1"} and "tags" not in sent


def test_the_issue_s_fields_are_all_gateway_fields() -> None:
    named = {"metadata", "tags", "fallbacks", "num_retries", "timeout", "caching", "cache", "guardrails",
             "mock_response", "mock_testing_fallbacks", "mock_timeout"}  # fmt: skip
    assert named <= GATEWAY_FIELDS
