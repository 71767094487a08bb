"""LiteLLM's routing strategies and pre-call checks, deterministic with a fake clock."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request
from tests.gateway.routing.test_router import CHAT, OK, by_host

from seance.gateway.catalogue import Prices
from seance.gateway.config import ConfigError
from seance.gateway.errors import CONTEXT_WINDOW, RateLimited, UpstreamError
from seance.gateway.providers import load_adapter
from seance.gateway.providers.base import Call, Reply, Target, Usage
from seance.gateway.ratelimits import Verdict
from seance.gateway.ratelimits.memory import MemoryStore
from seance.gateway.routing.deployments import Deployment
from seance.gateway.routing.router import make_call
from seance.gateway.routing.strategies import Strategy
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dep(id: str, **fields: Any) -> Deployment:
    adapter = load_adapter("openai")
    assert adapter is not None
    return Deployment(id=id, model_name="g", adapter=adapter, target=Target("openai", "m", "http://up.test"), **fields)


def strategy(name: str, clock: Clock, **kwargs: Any) -> Strategy:
    return Strategy(name, clock=clock, rng=random.Random(7), **kwargs)


def picks(s: Strategy, group: list[Deployment], n: int = 200) -> Counter[str]:
    return Counter(s.pick(group, set()).id for _ in range(n))


def test_least_busy_picks_the_fewest_in_flight() -> None:
    clock = Clock()
    a, b, c = dep("a"), dep("b"), dep("c")
    s = strategy("least-busy", clock)
    s.started(a), s.started(a), s.started(b)
    assert picks(s, [a, b, c]) == Counter({"c": 200})
    began = s.started(c)
    s.started(c)
    assert set(picks(s, [a, b, c])) == {"b"}
    s.finished(a, began, None, ok=True)
    s.finished(a, began, None, ok=False)
    assert set(picks(s, [a, b, c])) == {"a"}


def test_latency_based_picks_the_fastest_moving_average_within_the_buffer() -> None:
    clock = Clock()
    a, b, c = dep("a"), dep("b"), dep("c")
    s = strategy("latency-based-routing", clock)
    for d, seconds in ((a, 1.0), (b, 0.2), (c, 0.21)):
        began = s.started(d)
        clock.now += seconds
        s.finished(d, began, None, ok=True)
    assert set(picks(s, [a, b, c])) == {"b"}
    # one slow answer moves the average, not all the way
    began = s.started(b)
    clock.now += 2.0
    s.finished(b, began, None, ok=True)
    assert set(picks(s, [a, b, c])) == {"c"}
    buffered = strategy("latency-based-routing", clock, args={"lowest_latency_buffer": 0.5})
    buffered.stats = s.stats  # c 0.21, b 0.2 + 0.3 * 1.8 = 0.74, a 1.0: only c is within 50 % of the best
    assert set(picks(buffered, [a, b, c])) == {"c"}
    wide = strategy("latency-based-routing", clock, args={"lowest_latency_buffer": 4.0})
    wide.stats = s.stats
    assert set(picks(wide, [a, b, c])) == {"a", "b", "c"}


def test_a_deployment_never_measured_gets_tried_first() -> None:
    clock = Clock()
    a, b = dep("a"), dep("b")
    s = strategy("latency-based-routing", clock)
    s.latency(a, 0.05)
    assert set(picks(s, [a, b])) == {"b"}


async def test_latency_of_a_stream_is_its_time_to_first_chunk() -> None:
    clock = Clock()
    a = dep("a")
    s = strategy("latency-based-routing", clock)

    async def chunks() -> Any:
        clock.now += 0.3
        yield b"first"
        clock.now += 5.0
        yield b"second"

    began = s.started(a)
    seen = [chunk async for chunk in s.watch(a, began, chunks(), lambda: Usage(3, 4))]
    assert seen == [b"first", b"second"]
    assert s.stats["a"].latency == pytest.approx(0.3) and s.stats["a"].in_flight == 0
    assert s.stats["a"].tokens == 7


async def test_a_stream_closed_before_its_first_chunk_is_no_longer_in_flight() -> None:
    clock = Clock()
    a = dep("a")
    s = strategy("least-busy", clock)

    async def chunks() -> Any:
        yield b"never read"

    inner = chunks()
    watched = s.watch(a, s.started(a), inner, lambda: Usage(3, 4))
    assert s.stats["a"].in_flight == 1
    await watched.aclose()  # the client left before the relay read anything
    assert s.stats["a"].in_flight == 0 and s.stats["a"].tokens == 0
    assert inner.ag_running is False and inner.ag_frame is None  # the upstream side is closed too


def test_usage_based_picks_the_most_headroom_and_forgets_last_minute() -> None:
    clock = Clock()
    a, b = dep("a", tpm=1000), dep("b", tpm=100_000)
    s = strategy("usage-based-routing-v2", clock)
    began = s.started(b)
    s.finished(b, began, Usage(1000, 0), ok=True)  # 1 % of b's tpm
    began = s.started(a)
    s.finished(a, began, Usage(100, 0), ok=True)  # 10 % of a's
    assert set(picks(s, [a, b])) == {"b"}
    clock.now += 60
    assert len(picks(s, [a, b])) == 2  # a new minute: both empty, a tie


def test_cost_based_picks_the_cheapest_and_unknown_prices_last() -> None:
    clock = Clock()
    cheap = dep("cheap", prices=Prices.of({"input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7}))
    dear = dep("dear", prices=Prices.of({"input_cost_per_token": 3e-6, "output_cost_per_token": 1.5e-5}))
    unknown = dep("unknown")
    s = strategy("cost-based-routing", clock)
    assert set(picks(s, [unknown, dear, cheap])) == {"cheap"}
    assert set(picks(s, [unknown, dear], 50)) == {"dear"}
    assert s.pick([unknown, dear], {"dear"}).id == "unknown"  # a failed one is tried last


def test_simple_shuffle_follows_the_weights() -> None:
    a, b = dep("a", weight=3.0), dep("b", weight=1.0)
    counts = picks(strategy("simple-shuffle", Clock()), [a, b], 4000)
    assert 2800 < counts["a"] < 3200  # 3000 expected; > 9 standard deviations apart from failing


def _call(size: int) -> Call:
    return Call("chat", {}, b"x" * size, False, Target("openai", "m", "http://up.test"))


def test_pre_call_checks_skip_what_is_used_up_or_too_small() -> None:
    clock = Clock()
    limited = dep("limited", rpm=2)
    small = dep("small", info={"max_input_tokens": 100})  # info: model_info over the catalogue's entry
    big = dep("big", info={"max_input_tokens": 10_000})
    s = strategy("simple-shuffle", clock, pre_call_checks=True)

    def admitted(group: list[Deployment], size: int) -> list[str]:
        return [d.id for d in s.admit("g", group, lambda d: _call(size))[0]]

    assert admitted([limited, small, big], 200) == ["limited", "small", "big"]
    assert admitted([limited, small, big], 4000) == ["limited", "big"]  # ~1000 tokens
    s.started(limited), s.started(limited)
    assert admitted([limited, small], 200) == ["small"]
    clock.now += 60
    assert admitted([limited], 200) == ["limited"]


def test_a_deployment_knows_its_window_and_whether_it_has_limits() -> None:
    assert dep("a", info={"max_input_tokens": 100}).max_input == 100
    for odd in ("100", True, 0, -5, None, 1.5):  # not a window: no check on it
        assert dep("a", info={"max_input_tokens": odd}).max_input is None
    assert not dep("a").limited and dep("a", rpm=5).limited and dep("a", tpm=0).limited


def test_a_reloaded_deployment_is_checked_against_its_new_limits() -> None:
    """The counts of a deployment id carry over a reload; its limits are the new deployment's (the
    strategy keeps them beside the counts: they are read again when the deployment object changes)."""
    import dataclasses

    clock = Clock()
    s = strategy("simple-shuffle", clock, pre_call_checks=True)
    old = dep("d", rpm=2)
    s.started(old), s.started(old)
    assert s._used_up(old)
    new = dataclasses.replace(old, rpm=5)
    assert new.limited and not s._used_up(new) and s.stats["d"].rpm == 5
    assert s._used_up(dataclasses.replace(old, rpm=2))  # the same two requests counted
    assert dataclasses.replace(old, info={"max_input_tokens": 7}).max_input == 7


def test_pre_call_checks_on_a_group_of_one() -> None:
    clock = Clock()
    s = strategy("simple-shuffle", clock, pre_call_checks=True)
    built: list[Call] = []

    def build(d: Deployment, size: int = 200) -> Call:
        built.append(_call(size))
        return built[-1]

    plain = dep("plain")  # no window, no limit: nothing to check, nothing built
    assert s.admit("g", [plain], build) == ([plain], None) and built == []
    small = dep("small", info={"max_input_tokens": 100}, rpm=1)
    group, call = s.admit("g", [small], build)
    assert group == [small] and call is built[-1]  # measured once, on the call the router sends
    with pytest.raises(UpstreamError, match=r"about 1000 tokens.*at most 100 tokens") as refused:
        s.admit("g", [small], lambda d: build(d, 4000))
    assert refused.value.kind == CONTEXT_WINDOW and refused.value.code == "context_length_exceeded"
    s.started(small)
    with pytest.raises(RateLimited, match="used its rpm/tpm"):
        s.admit("g", [small], build)
    clock.now += 60  # another minute
    assert s.admit("g", [small], build)[0] == [small]
    with pytest.raises(RateLimited):
        s.admit("g", [dep("off", rpm=0)], build)  # an rpm of 0: never called


def test_pre_call_checks_return_the_call_only_for_the_first_deployment_left() -> None:
    s = strategy("simple-shuffle", Clock(), pre_call_checks=True)
    small, big = dep("small", info={"max_input_tokens": 100}), dep("big", info={"max_input_tokens": 10_000})
    call = _call(4000)
    assert s.admit("g", [small, big], lambda d: call) == ([big], None)  # built for small, which is out
    assert s.admit("g", [big, small], lambda d: call) == ([big], call)


def test_tpm_counts_the_tokens_of_answers_and_streams_in_their_minute() -> None:
    clock = Clock()
    s = strategy("simple-shuffle", clock, pre_call_checks=True)
    limited = dep("limited", tpm=100)
    s.answered(limited, s.started(limited), Reply(b"{}", Usage(60, 30)))
    assert s.admit("g", [limited], lambda d: _call(20))[0] == [limited]  # 90 of 100
    s.finished(limited, s.started(limited), Usage(5, 5), ok=True)
    with pytest.raises(RateLimited):
        s.admit("g", [limited], lambda d: _call(20))
    clock.now += 60
    assert s.admit("g", [limited], lambda d: _call(20))[0] == [limited]
    assert s.stats["limited"].in_flight == 0


def test_simple_shuffle_counts_only_the_deployments_with_limits(tmp_path: Path) -> None:
    answers = {host: MockResponse(200, OK) for host in ("a.test", "b.test", "long.test")}
    app, _ = _app(tmp_path, {"enable_pre_call_checks": True}, answers)
    for model in ("gpt", "long"):  # gpt's a and b have an rpm, long has none
        assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": model}).status == 200
    assert set(app.router.strategy.stats) <= {"a", "b"} and app.router.strategy.stats


def test_the_router_builds_the_call_once_with_pre_call_checks(tmp_path: Path, monkeypatch: Any) -> None:
    from seance.gateway.fronts import openai as front

    builds: list[str] = []

    def counted(*args: Any, **kwargs: Any) -> Call:
        builds.append(args[4].id)
        return make_call(*args, **kwargs)

    monkeypatch.setattr(front, "make_call", counted)
    answers = {"long.test": MockResponse(200, OK)}
    app, transport = _app(tmp_path, {"enable_pre_call_checks": True}, answers)
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "long"})  # gpt-4.1: a window
    assert result.status == 200 and len(builds) == 1 and len(transport.requests) == 1


def _app(tmp_path: Path, router: dict[str, Any], answers: dict[str, MockResponse], **settings: Any) -> Any:
    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://a.test", rpm=1, model_info={"id": "a",
                       "max_input_tokens": 50}),
            deployment("gpt", "openai/gpt-4o", api_base="http://b.test", rpm=1, model_info={"id": "b"}),
            deployment("long", "openai/gpt-4.1", api_base="http://long.test"),
        ],
        "router_settings": {"num_retries": 0, **router},
        "litellm_settings": settings,
    }  # fmt: skip
    return make_app(tmp_path, config, by_host(answers))


def test_rpm_is_a_limit_with_pre_call_checks(tmp_path: Path) -> None:
    answers = {"a.test": MockResponse(200, OK), "b.test": MockResponse(200, OK)}
    app, transport = _app(tmp_path, {"enable_pre_call_checks": True}, answers)
    first = request(app, "POST", "/v1/chat/completions", CHAT)
    second = request(app, "POST", "/v1/chat/completions", CHAT)
    assert {first.headers["x-litellm-model-id"], second.headers["x-litellm-model-id"]} == {"a", "b"}
    third = request(app, "POST", "/v1/chat/completions", CHAT)
    assert third.status == 429 and "rpm/tpm" in third.json()["error"]["message"]
    assert int(third.headers["retry-after"]) <= 60 and len(transport.requests) == 2


def test_a_request_too_long_for_every_deployment_goes_to_the_context_window_fallbacks(tmp_path: Path) -> None:
    answers = {"b.test": MockResponse(200, OK), "long.test": MockResponse(200, OK)}
    long_chat = {**CHAT, "messages": [{"role": "user", "content": "word " * 200}]}
    app, transport = _app(tmp_path, {"enable_pre_call_checks": True}, answers,
                          context_window_fallbacks=[{"gpt": ["long"]}])  # fmt: skip
    result = request(app, "POST", "/v1/chat/completions", long_chat)
    assert result.status == 200 and result.headers["x-litellm-model-id"] == "b"  # a (50 tokens) skipped
    del answers["b.test"]
    result = request(app, "POST", "/v1/chat/completions", long_chat)  # b's rpm is used: only a is left
    assert result.status == 200 and [r.url.split("/")[2] for r in transport.requests] == ["b.test", "long.test"]


@pytest.mark.parametrize("stream", [False, True])
def test_least_busy_through_the_gateway_counts_every_try_out_again(tmp_path: Path, stream: bool) -> None:
    chunks = [b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n',
              b"data: [DONE]\n\n"]  # fmt: skip
    answer = MockResponse(200, chunks, {"content-type": "text/event-stream"}) if stream else MockResponse(200, OK)
    answers = {"a.test": MockResponse(503, b"{}"), "b.test": answer}
    app, _ = _app(tmp_path, {"routing_strategy": "least-busy", "num_retries": 1, "cooldown_time": 0}, answers)
    for _ in range(6):
        result = request(app, "POST", "/v1/chat/completions", {**CHAT, "stream": stream})
        assert result.status == 200 and result.headers["x-litellm-model-id"] == "b"
    stats = app.router.strategy.stats
    assert all(s.in_flight == 0 for s in stats.values())  # failures and streams end their count
    assert stats["b"].requests == 6


def test_an_unknown_strategy_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown routing strategy 'least_busy'; did you mean 'least-busy'"):
        _app(tmp_path, {"routing_strategy": "least_busy"}, {})


def test_simple_shuffle_weighs_by_rpm_then_tpm_when_no_weight_is_set(tmp_path: Path) -> None:
    def weights(*entries: dict[str, Any]) -> list[float]:
        app, _ = make_app(tmp_path, {"model_list": list(entries)}, lambda r: MockResponse(200, OK))
        return [d.weight for d in app.deployments.groups["gpt"]]

    assert weights(deployment("gpt", "openai/a", rpm=300), deployment("gpt", "openai/b", rpm=100)) == [300, 100]
    assert weights(deployment("gpt", "openai/a", tpm=9000, rpm=1), deployment("gpt", "openai/b", tpm=1000)) == [
        9000,
        1000,
    ]  # not every one has an rpm: by tpm
    assert weights(deployment("gpt", "openai/a", rpm=300, weight=1), deployment("gpt", "openai/b", rpm=100)) == [1, 1]
    assert weights(deployment("gpt", "openai/a", rpm=300), deployment("gpt", "openai/b")) == [1, 1]


def test_a_passed_through_stream_counts_its_tokens_against_tpm(tmp_path: Path) -> None:
    """The relay's translator reads a stream's usage from its tail when it closes it, after the last
    chunk: the count waits for that. And the provider is asked for the usage though no hook needs
    it (stream_options.include_usage), and the client, who did not ask, does not get it."""
    usage = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
             b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}\n\n')  # fmt: skip
    chunk = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
             b'"delta":{"content":"yo"},"finish_reason":null}]}\n\n')  # fmt: skip
    asked: list[Any] = []

    def answer(sent: UpstreamRequest) -> MockResponse:
        asked.append(orjson.loads(sent.body or b"{}").get("stream_options"))
        return MockResponse(200, [chunk, usage, b"data: [DONE]\n\n"], {"content-type": "text/event-stream"})

    config = {"model_list": [deployment("gpt", "openai/gpt-4o", tpm=20)],
              "router_settings": {"enable_pre_call_checks": True}}  # fmt: skip
    app, _ = make_app(tmp_path, config, answer)
    first = request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "gpt", "stream": True})
    assert first.status == 200 and b'"usage"' not in first.body
    assert asked == [{"include_usage": True}]
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "gpt", "stream": True}).status == 200
    refused = request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "gpt", "stream": True})
    assert refused.status == 429 and refused.json()["error"]["code"] == "no_deployments_available"


def test_usage_based_routing_reads_what_the_shared_count_says_others_used() -> None:
    """With Redis (Strategy.shared), each admitted request brings back every worker's count of
    its deployment: usage-based routing then weighs what all of them used, not this worker's part."""
    clock = Clock()
    a, b = dep("a", rpm=100), dep("b", rpm=100)
    s = strategy("usage-based-routing-v2", clock, pre_call_checks=True)
    assert len(picks(s, [a, b])) == 2  # nothing used: a tie
    # the shared count admitted a request to a: 60 requests this window, across the workers
    s.used_elsewhere(a, Verdict(MemoryStore(), True, clock.now, ((clock.now, 60, 0, 0),)))
    s.started(a)
    assert set(picks(s, [a, b])) == {"b"}
    assert s.stats["a"].requests == 60
