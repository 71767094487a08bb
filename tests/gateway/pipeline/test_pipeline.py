"""The hook contract: on_request and before in list order, after in reverse once the last byte is
sent; a before-hook may answer instead of the provider; a failing after-hook changes nothing the
client sees; after-hooks see usage and cost of every answer, streams included, exactly as the
provider reported them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request
from tests.wire import load

from seance.gateway import routes
from seance.gateway.context import RequestContext
from seance.gateway.pipeline import Answer, Hook, Pipeline
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

PRICES = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
OPENAI_ANSWER = (
    b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
)


class Recorder(Hook):
    def __init__(self, name: str, events: list[str], answer: Answer | None = None, fail_after: bool = False) -> None:
        self.name = name
        self.events = events
        self.answer = answer
        self.fail_after = fail_after
        self.seen: RequestContext | None = None

    async def on_request(self, ctx: RequestContext) -> None:
        self.events.append(f"{self.name}.on_request")

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        self.events.append(f"{self.name}.before")
        return self.answer

    async def after(self, ctx: RequestContext) -> None:
        self.events.append(f"{self.name}.after")
        self.seen = ctx
        if self.fail_after:
            raise RuntimeError("a broken after-hook")


def answer(_: UpstreamRequest) -> MockResponse:
    return MockResponse(200, OPENAI_ANSWER)


def test_order_before_in_list_order_after_in_reverse(tmp_path: Path) -> None:
    events: list[str] = []
    hooks = [Recorder("a", events), Recorder("b", events), Recorder("c", events)]
    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, answer, hooks)
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 200 and result.body == OPENAI_ANSWER
    assert events == [
        "a.on_request", "b.on_request", "c.on_request",
        "a.before", "b.before", "c.before",
        "c.after", "b.after", "a.after",
    ]  # fmt: skip
    assert len(transport.requests) == 1


def test_a_before_hook_answers_instead_of_the_provider(tmp_path: Path) -> None:
    events: list[str] = []
    cached = Answer(b'{"cached": true}', headers=[(b"x-litellm-cache-key", b"k1")])
    hooks = [Recorder("a", events), Recorder("cache", events, answer=cached), Recorder("c", events)]
    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, answer, hooks)
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert (result.status, result.body) == (200, b'{"cached": true}')
    assert result.headers["x-litellm-cache-key"] == "k1"
    assert transport.requests == []  # the provider was never called
    assert "c.before" not in events
    assert events[-3:] == ["c.after", "cache.after", "a.after"]  # every after-hook still runs


def test_a_failing_after_hook_is_logged_and_changes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    events: list[str] = []
    hooks = [Recorder("a", events), Recorder("broken", events, fail_after=True), Recorder("c", events)]
    app, _ = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, answer, hooks)
    with caplog.at_level(logging.ERROR, logger="seance.gateway"):
        result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 200 and result.body == OPENAI_ANSWER
    assert events[-3:] == ["c.after", "broken.after", "a.after"]  # the hooks after it still run
    assert any("the broken hook failed after the answer" in r.getMessage() for r in caplog.records)


def test_a_refusal_before_is_the_clients_error_and_after_hooks_see_it(tmp_path: Path) -> None:
    events: list[str] = []
    recorder = Recorder("r", events)
    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, answer, [recorder])
    result = request(app, "POST", "/v1/chat/completions", CHAT, {"authorization": "Bearer wrong"})
    assert result.status == 401 and "LITELLM_MASTER_KEY" in result.json()["error"]["message"]
    assert "wrong" not in result.body.decode()
    assert transport.requests == [] and events == ["r.after"]  # auth refused before the body was read
    assert recorder.seen is not None and recorder.seen.status == 401


def test_after_hooks_see_usage_and_cost_of_a_plain_answer(tmp_path: Path) -> None:
    recorder = Recorder("r", [])
    config = {"model_list": [deployment("gpt", "openai/gpt-4o", model_info=PRICES)]}
    app, _ = make_app(tmp_path, config, answer, [recorder])
    result = request(app, "POST", "/v1/chat/completions", CHAT)
    ctx = recorder.seen
    assert ctx is not None and ctx.usage is not None
    assert (ctx.usage.prompt_tokens, ctx.usage.completion_tokens) == (7, 3)
    assert ctx.cost == pytest.approx(7 * 0.000001 + 3 * 0.000002)
    assert float(result.headers["x-litellm-response-cost"]) == pytest.approx(ctx.cost, abs=1e-12)
    assert ctx.status == 200 and ctx.model == "gpt" and ctx.deployment is not None
    assert ctx.ended is not None and ctx.client_first_byte is not None and ctx.upstream_first_byte is not None
    assert ctx.received <= ctx.upstream_first_byte <= ctx.client_first_byte <= ctx.ended


def _final_usage(stream: bytes) -> dict[str, Any]:
    """The usage object of the stream's final usage chunk, as the client received it."""
    for line in reversed(stream.split(b"\n")):
        if line.startswith(b"data: {") and b'"usage":{' in line.replace(b" ", b""):
            usage: dict[str, Any] = orjson.loads(line[6:])["usage"]
            return usage
    raise AssertionError("no usage chunk")


def test_after_hooks_see_usage_and_cost_of_a_pass_through_stream(tmp_path: Path) -> None:
    (exchange,) = load("openai/chat-stream-include-usage.httprr.txt")
    recorder = Recorder("r", [])
    config = {"model_list": [deployment("gpt", "openai/gpt-4o", model_info=PRICES)]}
    chunks = [exchange.response_body[i : i + 97] for i in range(0, len(exchange.response_body), 97)]

    def stream(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, chunks, {"content-type": "text/event-stream"})

    app, _ = make_app(tmp_path, config, stream, [recorder])
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    result = request(app, "POST", "/v1/chat/completions", body)
    assert result.status == 200 and result.body == exchange.response_body  # the bytes, as they came
    usage = _final_usage(result.body)
    ctx = recorder.seen
    assert ctx is not None and ctx.usage is not None and ctx.stream
    assert ctx.usage.prompt_tokens == usage["prompt_tokens"]
    assert ctx.usage.completion_tokens == usage["completion_tokens"]
    assert ctx.cost == pytest.approx(usage["prompt_tokens"] * 0.000001 + usage["completion_tokens"] * 0.000002)
    assert ctx.client_first_byte is not None and ctx.ended is not None and ctx.client_first_byte < ctx.ended


def test_after_hooks_see_usage_of_a_translated_stream(tmp_path: Path) -> None:
    exchange = load("anthropic/messages-stream-text.yaml")[0]
    recorder = Recorder("r", [])
    config = {"model_list": [deployment("claude", "anthropic/claude-haiku-4-5", model_info=PRICES)]}

    def stream(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, [exchange.response_body], {"content-type": "text/event-stream"})

    app, _ = make_app(tmp_path, config, stream, [recorder])
    body = {"model": "claude", "messages": CHAT["messages"], "stream": True, "stream_options": {"include_usage": True}}
    result = request(app, "POST", "/v1/chat/completions", body)
    assert result.status == 200
    usage = _final_usage(result.body)
    ctx = recorder.seen
    assert ctx is not None and ctx.usage is not None
    assert ctx.usage.prompt_tokens == usage["prompt_tokens"]
    assert ctx.usage.completion_tokens == usage["completion_tokens"]
    assert ctx.usage.completion_tokens > 0
    assert ctx.cost == pytest.approx(usage["prompt_tokens"] * 0.000001 + usage["completion_tokens"] * 0.000002)


def test_a_stream_cut_short_is_seen_by_after_hooks_as_an_error(tmp_path: Path) -> None:
    (exchange,) = load("openai/chat-stream-include-usage.httprr.txt")
    recorder = Recorder("r", [])
    half = exchange.response_body[: len(exchange.response_body) // 2]

    def stream(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, [half], {"content-type": "text/event-stream"})

    app, _ = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, stream, [recorder])
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert result.status == 200 and result.body.endswith(b"data: [DONE]\n\n") and b'"error"' in result.body
    assert recorder.seen is not None and recorder.seen.error is not None


def test_hooks_that_do_not_override_a_stage_are_not_called_there() -> None:
    class AfterOnly(Hook):
        async def after(self, ctx: RequestContext) -> None:
            pass

    pipeline = Pipeline([AfterOnly(), Hook()])
    assert pipeline._on_request == () and pipeline._before == ()
    assert len(pipeline._after) == 1


class UsageReader(Recorder):
    needs_usage = True


def _without_usage_chunk(stream: bytes) -> bytes:
    events = stream.split(b"\n\n")
    return b"\n\n".join(e for e in events if b'"usage":{' not in e.replace(b" ", b""))


def test_a_hook_that_needs_usage_gets_it_from_a_stream_whose_client_did_not_ask(tmp_path: Path) -> None:
    (exchange,) = load("openai/chat-stream-include-usage.httprr.txt")
    reader = UsageReader("spend", [])
    chunks = [exchange.response_body[i : i + 61] for i in range(0, len(exchange.response_body), 61)]

    def stream(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, chunks, {"content-type": "text/event-stream"})

    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, stream, [reader])
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    sent = orjson.loads(transport.requests[0].body or b"")
    assert sent["stream_options"] == {"include_usage": True}  # asked for on the client's behalf
    assert result.body == _without_usage_chunk(exchange.response_body)  # ...and kept from the client
    usage = _final_usage(exchange.response_body)
    ctx = reader.seen
    assert ctx is not None and ctx.usage is not None
    assert ctx.usage.prompt_tokens == usage["prompt_tokens"]
    assert ctx.usage.completion_tokens == usage["completion_tokens"]


def test_without_such_a_hook_the_stream_is_forwarded_as_sent(tmp_path: Path) -> None:
    (exchange,) = load("openai/chat-stream-include-usage.httprr.txt")
    recorder = Recorder("log", [])

    def stream(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, [exchange.response_body], {"content-type": "text/event-stream"})

    app, transport = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, stream, [recorder])
    body = orjson.dumps({**CHAT, "stream": True})
    result = request(app, "POST", "/v1/chat/completions", body)
    assert transport.requests[0].body == body.replace(b'"gpt"', b'"gpt-4o"')  # no stream_options added
    assert result.body == exchange.response_body


def test_a_plain_stage_is_called_without_a_coroutine_and_its_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`on_request_now` / `after_now`: called as plain methods, in the list's order (after: reversed),
    between the async ones; a plain after that raises is logged like an async one."""
    events: list[str] = []

    class Plain(Hook):
        name = "plain"

        def on_request_now(self, ctx: RequestContext) -> None:
            events.append("plain on_request")

        def after_now(self, ctx: RequestContext) -> None:
            events.append("plain after")
            raise RuntimeError("boom")

    class Waiting(Hook):
        async def on_request(self, ctx: RequestContext) -> None:
            events.append("waiting on_request")

        async def after(self, ctx: RequestContext) -> None:
            events.append("waiting after")

    pipeline = Pipeline([Plain(), Waiting()])
    assert pipeline._on_request_calls[0][1] and not pipeline._on_request_calls[1][1]
    ctx = RequestContext("r1", routes.NOT_FOUND, "POST", "/x")
    asyncio.run(pipeline.on_request(ctx))
    with caplog.at_level(logging.ERROR, logger="seance.gateway"):
        asyncio.run(pipeline.after(ctx))
    assert events == ["plain on_request", "waiting on_request", "waiting after", "plain after"]
    assert "the plain hook failed after the answer" in caplog.text


def test_a_stage_of_plain_hooks_only_runs_without_its_own_coroutine() -> None:
    """The master key's check never waits: with it (and metrics) alone, app.py calls the stage as a
    plain method. A virtual key may wait for the database: with KeyAuth the stage is awaited."""
    from types import SimpleNamespace

    from seance.gateway.pipeline.auth import Auth, KeyAuth

    assert Pipeline([Auth("sk-m", False)]).on_request_plain
    store = SimpleNamespace(keys=None, ledger=None)  # (not used here: KeyAuth only keeps it)
    keyed = Pipeline([Auth("sk-m", False), KeyAuth("sk-m", False, store)])  # type: ignore[arg-type]
    assert not keyed.on_request_plain and keyed._on_request_calls[1][1] is False
    ctx = RequestContext("r1", routes.CHAT, "POST", "/v1/chat/completions")
    ctx.credential = b"Bearer sk-wrong"
    with pytest.raises(Exception, match="invalid API key"):
        Pipeline([Auth("sk-m", False)]).on_request_now(ctx)


def test_an_after_stage_of_plain_hooks_only_is_called_plainly_and_survives_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every after hook of the usual list (metrics, limits, cache, spend) never waits: app.py then
    calls the stage's after_now, in reverse order, each failure logged and the rest still run."""
    events: list[str] = []

    class Plain(Hook):
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name, self.fail = name, fail

        def after_now(self, ctx: RequestContext) -> None:
            events.append(self.name)
            if self.fail:
                raise RuntimeError("boom")

        async def after(self, ctx: RequestContext) -> None:
            raise AssertionError("awaited although after_now is defined")

    class Waiting(Hook):
        async def after(self, ctx: RequestContext) -> None:
            events.append("waiting")

    hooks = [Plain("a"), Plain("broken", fail=True), Plain("c")]
    assert Pipeline(hooks).after_plain and not Pipeline([*hooks, Waiting()]).after_plain
    app, _ = make_app(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, answer, hooks)
    assert app.pipeline.after_plain
    with caplog.at_level(logging.ERROR, logger="seance.gateway"):
        result = request(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 200 and events == ["c", "broken", "a"]
    assert "the broken hook failed after the answer" in caplog.text


def test_a_plain_before_set_on_the_instance_is_called_instead_of_the_async_one() -> None:
    """`before_now`, set on a hook whose `before` never waits: called in the list's order without a
    coroutine; its answer ends the stage like an awaited one's."""
    events: list[str] = []

    class Plain(Hook):
        name = "plain"

        def __init__(self, answer: Answer | None) -> None:
            self.answer = answer
            self.before_now = self._now

        def _now(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
            events.append("plain before")
            return self.answer

        async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
            raise AssertionError("awaited although before_now is set")

    class Waiting(Hook):
        async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
            events.append("waiting before")
            return None

    ctx = RequestContext("r1", routes.NOT_FOUND, "POST", "/x")
    assert asyncio.run(Pipeline([Waiting(), Plain(None)]).before(ctx, {})) is None
    assert events == ["waiting before", "plain before"]
    events.clear()
    answer = Answer(b"{}")
    assert asyncio.run(Pipeline([Plain(answer), Waiting()]).before(ctx, {})) is answer
    assert events == ["plain before"]
