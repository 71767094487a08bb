"""Routing without sockets: retries, fallbacks and capabilities through a MockTransport."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request

from seance.gateway.config import ConfigError
from seance.gateway.errors import UpstreamError
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
OK = b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}'  # noqa: E501
DOWN = MockResponse(503, b'{"error": {"message": "overloaded"}}')
MESSAGES = {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


def by_host(answers: dict[str, MockResponse | BaseException]) -> object:
    def handler(request: UpstreamRequest) -> MockResponse | BaseException:
        host = request.url.split("/")[2]
        return answers[host]

    return handler


def test_a_failure_is_retried_on_another_deployment_of_the_group(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = {"model_list": [
        deployment("gpt", "openai/gpt-4o", api_base="http://a.test", model_info={"id": "dep-a"}),
        deployment("gpt", "openai/gpt-4o", api_base="http://b.test", model_info={"id": "dep-b"}),
    ]}  # fmt: skip
    app, transport = make_app(tmp_path, config, by_host({"a.test": DOWN, "b.test": MockResponse(200, OK)}))
    with caplog.at_level(logging.WARNING, logger="seance.gateway"):
        for _ in range(6):  # whichever is picked first, the answer comes from b
            result = request(app, "POST", "/v1/chat/completions", CHAT, {"x-request-id": "req-1"})
            assert result.status == 200 and result.headers["x-litellm-model-id"] == "dep-b"
    retried = [r.getMessage() for r in caplog.records if "dep-a" in r.getMessage()]
    assert retried and all("req-1" in line and "503" in line for line in retried)
    first_a = next(i for i, r in enumerate(transport.requests) if "a.test" in r.url)
    assert "b.test" in transport.requests[first_a + 1].url  # a failure moves to the other deployment


def test_a_client_error_is_not_retried(tmp_path: Path) -> None:
    refused = MockResponse(400, b'{"error": {"message": "bad tool schema"}}')
    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, lambda r: refused)
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 400 and "bad tool schema" in result.json()["error"]["message"]
    assert len(transport.requests) == 1


def test_retries_then_the_fallback_group(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://a.test"),
            deployment("backup", "openai/gpt-4o-mini", api_base="http://b.test"),
        ],
        "litellm_settings": {"num_retries": 1, "fallbacks": [{"gpt": ["backup"]}]},
    }
    app, transport = make_app(tmp_path, config, by_host({"a.test": DOWN, "b.test": MockResponse(200, OK)}))
    with caplog.at_level(logging.WARNING, logger="seance.gateway"):
        result = request(app, "POST", "/v1/chat/completions", CHAT, {"x-request-id": "req-2"})
    assert result.status == 200
    assert [r.url.split("/")[2] for r in transport.requests] == ["a.test", "a.test", "b.test"]
    assert result.headers["x-litellm-attempted-retries"] == "1"
    assert result.headers["x-litellm-attempted-fallbacks"] == "1"
    assert orjson.loads(transport.requests[-1].body or b"")["model"] == "gpt-4o-mini"
    assert any("req-2" in r.getMessage() and "falling back from 'gpt' to 'backup'" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_an_operation_the_group_does_not_serve_is_a_400_without_an_upstream_call(tmp_path: Path) -> None:
    config = {"model_list": [deployment("claude", "anthropic/claude-haiku-4-5")]}
    app, transport = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    result = request(app, "POST", "/v1/embeddings", {"model": "claude", "input": "x"})
    assert result.status == 400
    assert result.json()["error"]["message"] == "embeddings is not offered by anthropic, the provider of 'claude'"
    assert transport.requests == []


def test_model_info_mode_narrows_what_a_deployment_serves(tmp_path: Path) -> None:
    config = {"model_list": [deployment("embed", "openai/text-embedding-3-small", model_info={"mode": "embedding"})]}
    app, transport = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "embed"})
    assert result.status == 400 and "chat completions is not offered" in result.json()["error"]["message"]
    assert transport.requests == []


def test_a_fallback_that_can_serve_nothing_of_its_source_is_refused_at_start(tmp_path: Path) -> None:
    config = {
        "model_list": [
            deployment("embed", "openai/text-embedding-3-small", model_info={"mode": "embedding"}),
            deployment("gpt", "openai/gpt-4o", model_info={"mode": "chat"}),
        ],
        "litellm_settings": {"fallbacks": [{"embed": ["gpt"]}]},
    }
    with pytest.raises(ConfigError, match=r"fallbacks\[0\]: 'gpt' cannot stand in for 'embed'"):
        make_app(tmp_path, config, lambda r: MockResponse(200, OK))


# -- /v1/messages to an Anthropic group whose fallback is another provider (was a 500) --


def _claude_with_gpt_fallback(tmp_path: Path, gpt: MockResponse | BaseException) -> tuple[object, object]:
    config = {
        "model_list": [
            deployment("claude", "anthropic/claude-haiku-4-5", api_base="http://anthropic.test"),
            deployment("gpt", "openai/gpt-4o-mini", api_base="http://openai.test/v1"),
        ],
        "litellm_settings": {"num_retries": 0, "fallbacks": [{"claude": ["gpt"]}]},
    }
    overloaded = MockResponse(529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    return make_app(tmp_path, config, by_host({"anthropic.test": overloaded, "openai.test": gpt}))


def test_messages_fall_back_to_another_provider_translated(tmp_path: Path) -> None:
    app, transport = _claude_with_gpt_fallback(tmp_path, MockResponse(200, OK))
    result = request(app, "POST", "/v1/messages", MESSAGES)  # type: ignore[arg-type]
    assert result.status == 200
    message = result.json()
    assert message["type"] == "message" and message["content"] == [{"type": "text", "text": "yo"}]
    sent = transport.requests  # type: ignore[attr-defined]
    assert [r.url for r in sent] == ["http://anthropic.test/v1/messages", "http://openai.test/v1/chat/completions"]
    assert orjson.loads(sent[1].body)["messages"] == [{"role": "user", "content": "hi"}]


def test_messages_whose_fallback_fails_too_get_an_anthropic_shaped_error(tmp_path: Path) -> None:
    app, _ = _claude_with_gpt_fallback(tmp_path, UpstreamError("openai: cannot connect to openai.test:80"))
    result = request(app, "POST", "/v1/messages", MESSAGES)  # type: ignore[arg-type]
    assert result.status == 502
    error = result.json()
    assert error["type"] == "error" and error["error"]["type"] == "api_error"
    assert "cannot connect" in error["error"]["message"]


def test_count_tokens_never_reaches_a_fallback_that_cannot_count(tmp_path: Path) -> None:
    app, transport = _claude_with_gpt_fallback(tmp_path, MockResponse(200, OK))
    result = request(app, "POST", "/v1/messages/count_tokens", {"model": "claude", "messages": MESSAGES["messages"]})  # type: ignore[arg-type]
    assert result.status == 503 and result.json()["error"]["type"] == "overloaded_error"
    assert [r.url for r in transport.requests] == ["http://anthropic.test/v1/messages/count_tokens"]  # type: ignore[attr-defined]


# -- what a request asks of the router, cooldowns, backoff, wildcards --


def test_the_most_specific_wildcard_wins_whatever_the_order(tmp_path: Path) -> None:
    config = {"model_list": [
        {"model_name": "*", "litellm_params": {"model": "openai/*", "api_key": "k", "api_base": "http://openai.test/v1"}},
        {"model_name": "groq/*", "litellm_params": {"model": "groq/*", "api_key": "k", "api_base": "http://groq.test/v1"}},
    ]}  # fmt: skip
    app, transport = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "groq/llama-3"}).status == 200
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "gpt-4o"}).status == 200
    assert [r.url for r in transport.requests] == [
        "http://groq.test/v1/chat/completions",
        "http://openai.test/v1/chat/completions",
    ]


def _sleeps(app: object) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    app.router.sleep = sleep  # type: ignore[attr-defined]
    return slept


def test_the_request_sets_its_retries_and_fallbacks(tmp_path: Path) -> None:
    config = {"model_list": [deployment("gpt", "openai/gpt-4o", api_base="http://a.test"),
                             deployment("backup", "openai/gpt-4o", api_base="http://b.test")],
              "litellm_settings": {"num_retries": 0}}  # fmt: skip
    app, transport = make_app(tmp_path, config, by_host({"a.test": DOWN, "b.test": MockResponse(200, OK)}))
    slept = _sleeps(app)
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "num_retries": 2, "fallbacks": ["backup"]})
    assert result.status == 200 and result.headers["x-litellm-attempted-retries"] == "2"
    assert [r.url.split("/")[2] for r in transport.requests] == ["a.test"] * 3 + ["b.test"]
    assert len(slept) == 2 and 0.25 <= slept[0] <= 0.75 and 0.5 <= slept[1] <= 1.5  # doubling, with jitter
    for sent in transport.requests:
        assert set(orjson.loads(sent.body or b"")) == {"model", "messages"}  # the fields stay here


def test_headers_set_retries(tmp_path: Path) -> None:
    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, lambda r: DOWN)
    _sleeps(app)
    result = request(app, "POST", "/v1/chat/completions", CHAT, {"x-litellm-num-retries": "1"})
    assert result.status == 502 and len(transport.requests) == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_retries", -1),
        ("num_retries", "x"),
        ("timeout", 0),
        ("timeout", "soon"),
        ("fallbacks", "backup"),
        ("fallbacks", ["nope"]),
    ],
)
def test_bad_router_fields_are_the_clients_error(tmp_path: Path, field: str, value: object) -> None:
    config = {"model_list": [deployment("gpt", "openai/gpt-4o")]}
    app, transport = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, field: value})
    assert result.status in (400, 404) and transport.requests == []


def test_a_provider_s_retry_after_is_honoured(tmp_path: Path) -> None:
    limited = MockResponse(429, b'{"error": {"message": "slow down"}}', {"retry-after": "2"})
    answers = iter([limited, MockResponse(200, OK)])
    app, _ = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, lambda r: next(answers))
    slept = _sleeps(app)
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    assert slept == [2.0]


def test_a_retry_after_too_long_is_not_waited_for(tmp_path: Path) -> None:
    limited = MockResponse(429, b'{"error": {"message": "slow down"}}', {"retry-after": "600"})
    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, lambda r: limited)
    slept = _sleeps(app)
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 429 and result.headers["retry-after"] == "600"
    assert slept == [] and len(transport.requests) == 1


def test_a_failing_deployment_cools_down_and_the_group_says_when_it_is_back(tmp_path: Path) -> None:
    config = {"model_list": [
        deployment("gpt", "openai/gpt-4o", api_base="http://a.test", model_info={"id": "dep-a"}),
        deployment("gpt", "openai/gpt-4o", api_base="http://b.test", model_info={"id": "dep-b"}),
    ], "router_settings": {"allowed_fails": 1, "cooldown_time": 30},
       "litellm_settings": {"num_retries": 0}}  # fmt: skip
    healthy = {"b": True}

    def handler(r: UpstreamRequest) -> MockResponse:
        return DOWN if "a.test" in r.url or not healthy["b"] else MockResponse(200, OK)

    app, transport = make_app(tmp_path, config, handler)
    _sleeps(app)
    now = [1000.0]
    app.router.cooldowns.clock = lambda: now[0]  # type: ignore[attr-defined]
    for _ in range(20):
        request(app, "POST", "/v1/chat/completions", CHAT)
    to_a = [i for i, r in enumerate(transport.requests) if "a.test" in r.url]
    assert len(to_a) == 2  # more than allowed_fails (1) failures, then a is skipped
    before = len(transport.requests)
    healthy["b"] = False
    for _ in range(3):  # b fails twice too: every deployment cools down
        request(app, "POST", "/v1/chat/completions", CHAT)
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 429 and result.json()["error"]["code"] == "no_deployments_available"
    assert "'gpt' is cooling down" in result.json()["error"]["message"] and int(result.headers["retry-after"]) <= 30
    assert len(transport.requests) - before == 2
    now[0] += 31  # the cooldown is over: the group is tried again
    healthy["b"] = True
    count = len(transport.requests)
    assert request(app, "POST", "/v1/chat/completions", CHAT).status != 429
    assert len(transport.requests) == count + 1


def test_a_groups_only_deployment_never_cools_down(tmp_path: Path) -> None:
    config = {"model_list": [deployment("gpt", "openai/gpt-4o")],
              "router_settings": {"allowed_fails": 0}, "litellm_settings": {"num_retries": 0}}  # fmt: skip
    answers = iter([DOWN, DOWN, MockResponse(200, OK)])
    app, _ = make_app(tmp_path, config, lambda r: next(answers))
    statuses = [request(app, "POST", "/v1/chat/completions", CHAT).status for _ in range(3)]
    assert statuses == [502, 502, 200]


def test_the_request_sets_its_timeout(tmp_path: Path) -> None:
    config = {"model_list": [deployment("gpt", "openai/gpt-4o", timeout=120)]}
    app, transport = make_app(tmp_path, config, lambda r: MockResponse(200, OK))
    request(app, "POST", "/v1/chat/completions", CHAT)
    request(app, "POST", "/v1/chat/completions", {**CHAT, "timeout": 7})
    request(app, "POST", "/v1/chat/completions", CHAT, {"x-litellm-timeout": "3.5"})
    assert [t.total for t in transport.timeouts] == [120, 7, 3.5]


def test_a_streamed_request_sets_its_stream_timeout(tmp_path: Path) -> None:
    """LiteLLM's stream_timeout (the body's, else x-litellm-stream-timeout): a streamed request's
    wait for the provider's next bytes, over its timeout; a request that does not stream keeps its
    timeout. A value that is not a number of seconds is the client's 400 either way."""
    events = [b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[]}\n\n',
              b"data: [DONE]\n\n"]  # fmt: skip

    def answer(sent: UpstreamRequest) -> MockResponse:
        if b'"stream":true' in (sent.body or b""):
            return MockResponse(200, list(events), {"content-type": "text/event-stream"})
        return MockResponse(200, OK)

    config = {"model_list": [deployment("gpt", "openai/gpt-4o", timeout=120, stream_timeout=60)]}
    app, transport = make_app(tmp_path, config, answer)
    streamed = {**CHAT, "stream": True}
    assert request(app, "POST", "/v1/chat/completions", streamed).status == 200
    assert request(app, "POST", "/v1/chat/completions", {**streamed, "stream_timeout": 5, "timeout": 9}).status == 200
    assert request(app, "POST", "/v1/chat/completions", streamed, {"x-litellm-stream-timeout": "2.5"}).status == 200
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "stream_timeout": 5}).status == 200
    assert [(t.read, t.total) for t in transport.timeouts] == [(60, None), (5, None), (2.5, None), (None, 120)]
    refused = request(app, "POST", "/v1/chat/completions", CHAT, {"x-litellm-stream-timeout": "soon"})
    assert refused.status == 400 and refused.json()["error"]["param"] == "x-litellm-stream-timeout"


def test_a_deployments_own_max_retries_try_it_again_before_the_next_one(tmp_path: Path) -> None:
    """litellm_params.max_retries: the same deployment again (as a provider's SDK retries), with its
    backoff, before the router moves on; num_retries 0 leaves the router no retry of its own."""
    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://a.test", max_retries=2, model_info={"id": "dep-a"}),
            deployment("backup", "openai/gpt-4o", api_base="http://b.test"),
        ],
        "litellm_settings": {"num_retries": 0, "fallbacks": [{"gpt": ["backup"]}]},
    }
    answers = iter([DOWN, DOWN, MockResponse(200, OK)])

    def handler(sent: UpstreamRequest) -> MockResponse:
        return next(answers) if "a.test" in sent.url else MockResponse(200, OK)

    app, transport = make_app(tmp_path, config, handler)
    slept = _sleeps(app)
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 200 and result.headers["x-litellm-model-id"] == "dep-a"
    assert [r.url.split("/")[2] for r in transport.requests] == ["a.test"] * 3
    assert len(slept) == 2 and result.headers["x-litellm-attempted-retries"] == "2"
    # used up: the router's fallback answers
    answers = iter([DOWN] * 3)
    transport.requests.clear()
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 200 and [r.url.split("/")[2] for r in transport.requests] == ["a.test"] * 3 + ["b.test"]


def test_own_retries_never_repeat_a_client_error(tmp_path: Path) -> None:
    refused = MockResponse(400, b'{"error": {"message": "bad tool schema"}}')
    config = {"model_list": [deployment("gpt", "openai/gpt-4o", max_retries=3)]}
    app, transport = make_app(tmp_path, config, lambda r: refused)
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 400 and len(transport.requests) == 1
