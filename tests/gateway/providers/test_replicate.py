"""The Replicate adapter against the recorded predictions traffic: create with Prefer: wait,
polling to completion, the stream URL, and problem+json errors."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.gateway.providers.helpers import SPLITS, accumulate, chunks_of, make_call, run_stream
from tests.wire import load

from seance.gateway.errors import BadRequest, UpstreamError
from seance.gateway.providers.base import Reply, UpstreamRequest
from seance.gateway.providers.replicate import Replicate

ADAPTER = Replicate()
BASE = "https://api.replicate.com"
HAIKU = [{"role": "user", "content": "Please write a haiku about llamas"}]


def call(body: dict[str, Any], model: str = "meta/meta-llama-3-8b-instruct", **kwargs: Any) -> Any:
    return make_call("chat", body, provider="replicate", model=model, api_base=ADAPTER.normalize_base(BASE), **kwargs)


def test_create_with_prefer_wait_then_poll() -> None:
    (exchange,) = load("replicate/predictions-create-prefer-wait.yaml")
    c = call({"model": "r", "messages": HAIKU})
    request = ADAPTER.build(c)
    assert (request.method, request.url) == ("POST", exchange.url)
    assert request.headers["prefer"] == "wait" and request.headers["authorization"] == "Bearer test-key"
    assert request.body is not None and orjson.loads(request.body) == exchange.request_json()
    # The recorded answer came back still "processing": the adapter polls, waiting a little longer each time.
    follow = ADAPTER.parse(c, exchange.status, exchange.response_body)
    assert isinstance(follow, UpstreamRequest) and not isinstance(follow, Reply)
    assert follow.method == "GET" and follow.url == BASE + "/v1/predictions/jp9nrd1g2hrj20cjb2vrb55mkr"
    assert follow.delay > 0 and follow.body is None
    again = ADAPTER.parse(c, 200, exchange.response_body)
    assert isinstance(again, UpstreamRequest) and again.delay > follow.delay
    finished = orjson.loads(exchange.response_body)
    finished.update(status="succeeded", metrics={"input_token_count": 10, "output_token_count": 12})
    reply = ADAPTER.parse(c, 200, orjson.dumps(finished))
    assert isinstance(reply, Reply)
    data = orjson.loads(reply.body)
    assert data["id"] == "jp9nrd1g2hrj20cjb2vrb55mkr"
    assert data["choices"][0]["message"]["content"] == "".join(finished["output"])
    assert data["choices"][0]["message"]["content"].startswith("\n\nFuzzy, gentle beasts")
    assert data["usage"]["prompt_tokens"] == 10 and data["usage"]["completion_tokens"] == 12


def test_poll_lifecycle_to_succeeded() -> None:
    exchanges = load("replicate/predictions-run-poll.yaml")
    c = call({"model": "r", "messages": HAIKU}, model="stability-ai/sdxl:" + exchanges[0].request_json()["version"])
    request = ADAPTER.build(c)
    assert request.url == BASE + "/v1/predictions"
    body = orjson.loads(request.body or b"")
    assert body["version"] == exchanges[0].request_json()["version"]
    polls = [e for e in exchanges if e.url.startswith(BASE + "/v1/predictions")]
    for exchange in polls[:-1]:
        follow = ADAPTER.parse(c, exchange.status, exchange.response_body)
        assert isinstance(follow, UpstreamRequest) and follow.url == polls[1].url
    reply = ADAPTER.parse(c, 200, polls[-1].response_body)
    assert isinstance(reply, Reply)
    assert orjson.loads(reply.body)["choices"][0]["message"]["content"].endswith("/out-0.png")


def test_stream_follows_the_stream_url() -> None:
    exchange = load("replicate/predictions-create-stream.yaml")[2]
    version = exchange.request_json()["version"]
    c = call({"model": "r", "messages": [{"role": "user", "content": "write a sonnet about camelids"}],
              "stream": True}, model="meta/llama-2-70b-chat:" + version)  # fmt: skip
    request = ADAPTER.build(c)
    assert request.body is not None and orjson.loads(request.body) == exchange.request_json()
    assert "prefer" not in request.headers and not request.stream
    follow = ADAPTER.parse(c, exchange.status, exchange.response_body)
    assert isinstance(follow, UpstreamRequest) and follow.stream and follow.method == "GET"
    assert follow.url == exchange.response_json()["urls"]["stream"]
    assert follow.headers["accept"] == "text/event-stream"


@pytest.mark.parametrize("mode", SPLITS)
def test_stream_events(mode: str) -> None:
    # The stream body itself was never recorded; this is the documented event format.
    body = b"event: output\nid: 1\ndata: Fuzzy\n\nevent: output\nid: 2\ndata: , gentle\n\n" \
        b"event: output\nid: 3\ndata: line one\ndata: line two\n\nevent: done\ndata: {}\n\n"  # fmt: skip
    c = call({"model": "r", "messages": HAIKU, "stream": True})
    result = accumulate(chunks_of(run_stream(ADAPTER.stream(c), body, mode)))
    assert result["content"] == "Fuzzy, gentleline one\nline two" and result["finish_reason"] == "stop"


def test_stream_error_event_and_cut() -> None:
    c = call({"model": "r", "messages": HAIKU, "stream": True})
    translator = ADAPTER.stream(c)
    # the text before the error reaches the client first; the error comes with the next call
    out = translator.feed(b'event: output\ndata: a\n\nevent: error\ndata: {"detail": "CUDA out of memory"}\n\n')
    assert b'"content":"a"' in out
    with pytest.raises(UpstreamError) as caught:
        translator.close()
    assert "CUDA out of memory" in caught.value.message
    translator = ADAPTER.stream(c)
    translator.feed(b"event: output\ndata: a\n\n")
    with pytest.raises(UpstreamError):
        translator.close()


def test_finished_before_streaming_is_one_whole_stream() -> None:
    (exchange,) = load("replicate/predictions-create-prefer-wait.yaml")
    done = {**exchange.response_json(), "status": "succeeded"}
    c = call({"model": "r", "messages": HAIKU, "stream": True, "stream_options": {"include_usage": True}})
    reply = ADAPTER.parse(c, 200, orjson.dumps(done))
    assert isinstance(reply, Reply) and reply.content_type == "text/event-stream"
    assert accumulate(chunks_of(reply.body))["content"] == "".join(done["output"])


def test_failed_prediction_and_422() -> None:
    c = call({"model": "r", "messages": HAIKU})
    with pytest.raises(UpstreamError) as caught:
        ADAPTER.parse(c, 200, b'{"id":"x","status":"failed","error":"prompt too long"}')
    assert "prompt too long" in caught.value.message
    (exchange,) = load("replicate/models-predictions-create-422.json")
    err = ADAPTER.error(c, 422, exchange.response_headers, exchange.response_body)
    assert err.status == 422 and "Additional property provider is not allowed" in err.message


def test_prompt_building_and_params() -> None:
    messages = [
        {"role": "system", "content": "You are a poet."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "A haiku?"},
    ]
    body = {"model": "r", "max_tokens": 64, "temperature": 0.5, "stop": ["\n\n", "END"], "messages": messages}
    request = ADAPTER.build(call(body, model="deployments/acme/poet"))
    assert request.url == BASE + "/v1/deployments/acme/poet/predictions"
    data = orjson.loads(request.body or b"")["input"]
    assert data == {
        "prompt": "User: Hi\nAssistant: Hello\nUser: A haiku?\nAssistant:",
        "system_prompt": "You are a poet.",
        "max_tokens": 64,
        "temperature": 0.5,
        "stop_sequences": "\n\n,END",
    }
    with pytest.raises(BadRequest) as caught:
        ADAPTER.build(call({**body, "tools": [{"type": "function", "function": {"name": "f"}}]}))
    assert caught.value.param == "tools"
    assert "tools" not in orjson.loads(
        ADAPTER.build(call({**body, "tools": []}, extra={"drop_params": True})).body or b""
    )


def test_create_without_waiting_starts_polling() -> None:
    (exchange,) = load("replicate/models-predictions-create-llama2.yaml")
    c = call({"model": "r", "messages": [{"role": "user", "content": "Please write a haiku about llamas."}]},
             model="meta/llama-2-70b-chat")  # fmt: skip
    request = ADAPTER.build(c)
    assert request.url == exchange.url and orjson.loads(request.body or b"") == exchange.request_json()
    follow = ADAPTER.parse(c, exchange.status, exchange.response_body)  # "starting"
    assert isinstance(follow, UpstreamRequest) and not isinstance(follow, Reply)
    assert follow.url == BASE + "/v1/predictions/heat2o3bzn3ahtr6bjfftvbaci" and follow.method == "GET"
