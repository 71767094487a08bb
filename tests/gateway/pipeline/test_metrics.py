"""The metrics hook and GET /metrics, in process over a MockTransport: LiteLLM's metric names and
labels, values equal to what was sent, bounded labels (no key, no client-made model name), the
scrape's key check."""

from __future__ import annotations

import asyncio
import gc
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.gateway.asgi_client import KEY, arequest, deployment, request

from seance.gateway import metrics as metrics_module
from seance.gateway.app import Gateway
from seance.gateway.config import load_settings
from seance.gateway.context import MASTER_KEY_ALIAS, Caller, RequestContext
from seance.gateway.errors import RateLimited
from seance.gateway.metrics import MASTER_LABELS, Metrics
from seance.gateway.pipeline import Answer, Hook
from seance.gateway.pipeline import metrics as metrics_hook_module
from seance.gateway.pipeline.auth import Auth
from seance.gateway.pipeline.cache import Cache, CacheConfig
from seance.gateway.pipeline.cache_stores import LocalStore
from seance.gateway.pipeline.metrics import MetricsHook
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse, MockTransport

PRICES = {"input_cost_per_token": 0.000001, "output_cost_per_token": 0.000002}
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = (
    b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
)
STREAM = [
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"yo"}}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],'
    b'"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}\n\n',
    b"data: [DONE]\n\n",
]
CALLBACKS = {"litellm_settings": {"callbacks": ["prometheus"]}}


def answer(_: UpstreamRequest) -> MockResponse:
    return MockResponse(200, ANSWER)


def metered(
    tmp_path: Path,
    config: dict[str, Any],
    handler: Any = answer,
    extra: list[Hook] | None = None,
    env: dict[str, str] | None = None,
) -> Gateway:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({**CALLBACKS, **config}))
    settings = load_settings(path, {"LITELLM_MASTER_KEY": KEY, **(env or {})})
    assert settings.metrics
    metrics = Metrics(settings)
    hooks = [MetricsHook(metrics), Auth(KEY, False), *(extra or [])]
    return Gateway(settings, hooks, MockTransport(handler), metrics=metrics)


def scrape(app: Gateway) -> dict[str, list[Any]]:
    result = request(app, "GET", "/metrics")
    assert result.status == 200, result.body
    assert result.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(result.body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


def test_requests_tokens_spend_and_latency_equal_what_was_sent(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o", model_info=PRICES)]})
    for _ in range(3):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    got = scrape(app)
    assert value(got, "litellm_proxy_total_requests_metric_total", requested_model="gpt", status_code="200") == 3
    assert value(got, "litellm_proxy_failed_requests_metric_total") == 0
    assert value(got, "litellm_input_tokens_metric_total", model="gpt", requested_model="gpt") == 21
    assert value(got, "litellm_output_tokens_metric_total", model="gpt") == 9
    assert value(got, "litellm_total_tokens_metric_total", model="gpt") == 30
    assert value(got, "litellm_spend_metric_total", model="gpt") == pytest.approx(3 * (7e-6 + 6e-6))
    assert value(got, "litellm_request_total_latency_metric_count", requested_model="gpt") == 3
    assert value(got, "litellm_request_total_latency_metric_bucket", requested_model="gpt", le="+Inf") == 3
    assert value(got, "litellm_llm_api_latency_metric_count", model="gpt") == 3
    assert value(got, "litellm_llm_api_time_to_first_token_metric_count") == 0  # none was streamed
    assert value(got, "seance_requests_in_flight") == 0
    state = got["litellm_deployment_state"]
    assert [(s.labels["litellm_model_name"], s.labels["api_provider"], s.value) for s in state] == [
        ("gpt", "openai", 0.0)
    ]
    assert state[0].labels["api_base"] == "http://up.test"


SERIES = {"requested_model": "gpt", "status_code": "200", **dict(zip(metrics_module.WHO, MASTER_LABELS, strict=True))}


def counted(app: Gateway) -> float | None:
    """What prometheus_client's own value holds now (no scrape, so no push); None: no such series."""
    metrics = app.metrics.metrics
    assert metrics is not None and metrics.registry is not None
    found = [
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "litellm_proxy_total_requests_metric_total"
        and all(sample.labels.get(k) == v for k, v in SERIES.items())
    ]
    return sum(found) if found else None


def test_the_request_path_counts_are_pushed_before_each_scrape(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]})
    for _ in range(2):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    assert not counted(app)  # batched: not in prometheus_client yet
    got = scrape(app)
    assert value(got, "litellm_proxy_total_requests_metric_total", requested_model="gpt") == 2
    assert value(got, "litellm_request_total_latency_metric_count", requested_model="gpt") == 2
    assert counted(app) == 2
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    assert value(scrape(app), "litellm_proxy_total_requests_metric_total", requested_model="gpt") == 3


def test_a_series_without_a_push_for_long_pushes_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The latencies are kept one by one until a push: with no push coming, they must not grow
    without bound, so a series pushes itself every PUSH_AFTER requests."""
    monkeypatch.setattr(metrics_hook_module, "PUSH_AFTER", 3)
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]})
    for _ in range(3):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    assert not counted(app)
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    assert counted(app) == 3  # the fourth request pushed what its series held, then counted itself
    (hook,) = (h for h in app.pipeline.hooks if isinstance(h, MetricsHook))
    (series,) = hook._series.values()
    assert len(series.latency.amounts) == len(series.api_latency.amounts) == 1  # type: ignore[union-attr]
    assert value(scrape(app), "litellm_request_total_latency_metric_count", requested_model="gpt") == 4


@asynccontextmanager
async def serving(app: Gateway) -> AsyncIterator[None]:
    """The app's lifespan, as uvicorn drives it: startup, then shutdown on the way out."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan"}, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task
        gc.unfreeze()  # the startup froze what existed: this test's garbage is the collector's again


@pytest.mark.parametrize("interval", [0.05, 3600.0])
def test_a_running_gateway_pushes_every_interval_and_at_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval: float
) -> None:
    monkeypatch.setattr(metrics_module, "PUSH_INTERVAL", interval)
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]})

    async def main() -> None:
        async with serving(app):
            for _ in range(2):
                assert (await arequest(app, "POST", "/v1/chat/completions", CHAT)).status == 200
            await asyncio.sleep(0.3)
            assert counted(app) == (2 if interval < 0.3 else 0)  # the periodic push, or none yet
        assert counted(app) == 2  # the last push, at shutdown

    asyncio.run(main())


def test_a_stream_has_its_time_to_first_token_and_its_usage(tmp_path: Path) -> None:
    def streamed(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, STREAM, {"content-type": "text/event-stream"})

    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, streamed)
    result = request(app, "POST", "/v1/chat/completions", {**CHAT, "stream": True})
    assert result.status == 200 and b"[DONE]" in result.body
    got = scrape(app)
    assert value(got, "litellm_llm_api_time_to_first_token_metric_count", model="gpt") == 1
    assert value(got, "litellm_input_tokens_metric_total", model="gpt") == 5
    assert value(got, "litellm_output_tokens_metric_total", model="gpt") == 2


def test_an_unknown_model_makes_no_label_of_its_name(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]})
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "made-up-by-a-client"}).status == 404
    text = request(app, "GET", "/metrics").body.decode()
    assert "made-up-by-a-client" not in text
    got = scrape(app)
    assert value(got, "litellm_proxy_total_requests_metric_total", requested_model="other", status_code="404") == 1
    failed = "litellm_proxy_failed_requests_metric_total"
    assert value(got, failed, exception_status="404", exception_class="ModelNotFound") == 1


def test_a_wildcard_is_labelled_by_its_pattern(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("openai/*", "openai/*")]})
    for name in ("openai/gpt-a", "openai/gpt-b"):
        assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": name}).status == 200
    text = request(app, "GET", "/metrics").body.decode()
    assert "gpt-a" not in text and "gpt-b" not in text
    assert value(scrape(app), "litellm_proxy_total_requests_metric_total", requested_model="openai/*") == 2


def test_upstream_failures_and_cooldowns(tmp_path: Path) -> None:
    def limited(call: UpstreamRequest) -> MockResponse:
        if "first" in call.url:
            return MockResponse(429, b'{"error":{"message":"slow down"}}')
        return MockResponse(200, ANSWER)

    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://first.test", model_info={"id": "one"}),
            deployment("gpt", "openai/gpt-4o", api_base="http://second.test", model_info={"id": "two"}),
        ],
    }
    app = metered(tmp_path, config, limited)
    transport = app.transport
    assert isinstance(transport, MockTransport)
    # the router picks at random: go on until it has picked "one" (its 429 cools it down)
    for _ in range(100):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
        if any("first" in sent.url for sent in transport.requests):
            break
    for _ in range(3):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    got = scrape(app)
    cooled = got["litellm_deployment_cooled_down_total"]
    assert [(s.labels["model_id"], s.labels["exception_status"], s.value) for s in cooled] == [("one", "429", 1.0)]
    states = {s.labels["model_id"]: s.value for s in got["litellm_deployment_state"]}
    assert states == {"one": 2.0, "two": 0.0}


def test_interleaved_models_and_outcomes_land_in_their_own_series(tmp_path: Path) -> None:
    """The hook finds a request's series by comparing it with the last request's first: requests
    that alternate models and outcomes must still each count in their own."""

    def answer_or_fail(call: UpstreamRequest) -> MockResponse:
        return MockResponse(500, b'{"error":{"message":"down"}}') if "broken" in call.url else MockResponse(200, ANSWER)

    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o"),
            deployment("mini", "openai/gpt-4o-mini", api_base="http://broken.test"),
        ],
        "router_settings": {"num_retries": 0},
    }
    app = metered(tmp_path, config, answer_or_fail)
    statuses: list[int] = []
    for model in ("gpt", "mini", "gpt", "gpt", "mini", "gpt"):
        statuses.append(request(app, "POST", "/v1/chat/completions", {**CHAT, "model": model}).status)
    failed = statuses[1]
    assert statuses == [200, failed, 200, 200, failed, 200] and failed >= 500
    got = scrape(app)
    total = "litellm_proxy_total_requests_metric_total"
    assert value(got, total, requested_model="gpt", status_code="200") == 4
    assert value(got, total, requested_model="mini", status_code=str(failed)) == 2
    assert value(got, total, requested_model="mini", status_code="200") == 0
    assert value(got, "litellm_input_tokens_metric_total", requested_model="gpt") == 4 * 7


def test_each_call_to_a_deployment_counts_by_its_outcome(tmp_path: Path) -> None:
    """LiteLLM's per-deployment counters: every try is a call (the failed ones with their status and
    error class), successes have their latency per output token and the gateway's overhead."""
    calls = {"n": 0}

    def flaky(call: UpstreamRequest) -> MockResponse:
        calls["n"] += 1
        if "broken" in call.url or ("flaky" in call.url and calls["n"] % 2):
            return MockResponse(500, b'{"error":{"message":"down"}}')
        return MockResponse(200, ANSWER)

    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://flaky.test", model_info={"id": "gpt-1"}),
            deployment("mini", "openai/gpt-4o-mini", api_base="http://broken.test", model_info={"id": "mini-1"}),
        ],
        "router_settings": {"num_retries": 1, "retry_after": 0},
    }
    app = metered(tmp_path, config, flaky, extra=[VirtualKey()])
    assert [request(app, "POST", "/v1/chat/completions", {**CHAT, "model": m}).status for m in ("gpt", "gpt")] == [
        200, 200,
    ]  # each: one failed try, then the answer  # fmt: skip
    broken = request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "mini"}).status
    assert broken >= 500  # two failed tries
    got = scrape(app)
    me = {"hashed_api_key": "ab" * 6, "api_key_alias": "ci-bot", "team": "team-7", "team_alias": ""}
    gpt = {"model_group": "gpt", "requested_model": "gpt", "litellm_model_name": "gpt", "model_id": "gpt-1",
           "api_base": "http://flaky.test", "api_provider": "openai", **me}  # fmt: skip
    assert value(got, "litellm_deployment_total_requests_total", **gpt) == 4
    assert value(got, "litellm_deployment_success_responses_total", **gpt) == 2
    failures = [s for s in got["litellm_deployment_failure_responses_total"] if s.labels["model_id"] == "gpt-1"]
    assert [(s.labels["exception_status"], s.labels["exception_class"], s.value) for s in failures] == [
        ("500", "UpstreamError", 2.0)
    ]
    mini = {"model_id": "mini-1", "requested_model": "mini", **me}
    assert value(got, "litellm_deployment_total_requests_total", **mini) == 2
    assert value(got, "litellm_deployment_failure_responses_total", **mini, exception_status="500") == 2
    assert value(got, "litellm_deployment_success_responses_total", **mini) == 0
    per_token = {"model_group": "gpt", "model_id": "gpt-1", **me}
    assert value(got, "litellm_deployment_latency_per_output_token_count", **per_token) == 2
    assert 0 < value(got, "litellm_deployment_latency_per_output_token_sum", **per_token) < 5
    overhead = {"model_group": "gpt", "model_id": "gpt-1", "api_provider": "openai", "hashed_api_key": "ab" * 6}
    assert value(got, "litellm_overhead_latency_metric_count", **overhead) == 2
    assert value(got, "litellm_overhead_latency_metric_count", model_id="mini-1") == 0  # no success


def test_fallbacks_that_answered_and_that_failed(tmp_path: Path) -> None:
    def answer_or_fail(call: UpstreamRequest) -> MockResponse:
        return MockResponse(503, b'{"error":{"message":"down"}}') if "broken" in call.url else MockResponse(200, ANSWER)

    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", api_base="http://broken.test", model_info={"id": "gpt-1"}),
            deployment("backup", "openai/gpt-4o-mini", model_info={"id": "backup-1"}),
            deployment("mini", "openai/gpt-4o-mini", api_base="http://broken.test", model_info={"id": "mini-1"}),
            deployment("mini2", "openai/gpt-4o-mini", api_base="http://broken.test", model_info={"id": "mini2-1"}),
        ],
        "router_settings": {"num_retries": 0, "fallbacks": [{"gpt": ["backup"]}, {"mini": ["mini2"]}]},
    }
    app = metered(tmp_path, config, answer_or_fail, extra=[VirtualKey()])
    for _ in range(2):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "mini"}).status >= 500
    assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": "backup"}).status == 200  # no fallback
    got = scrape(app)
    answered = got["litellm_deployment_successful_fallbacks_total"]
    names = ("requested_model", "fallback_model", "model_id", "exception_status", "exception_class", "api_key_alias")
    assert [(*(s.labels[n] for n in names), s.value) for s in answered] == [
        ("gpt", "backup", "backup-1", "503", "UpstreamError", "ci-bot", 2.0)
    ]  # fmt: skip
    failed = got["litellm_deployment_failed_fallbacks_total"]
    assert [(s.labels["requested_model"], s.labels["fallback_model"], s.labels["exception_status"], s.value)
            for s in failed] == [("mini", "mini2", "503", 1.0)]  # fmt: skip


# recorded answers whose headers tell what each provider's rate limits had left
RECORDED = {
    "gpt": ("openai/gpt-4o-mini", "openai/chat-nonstream.httprr.txt", 9999, 49999992),
    "claude": ("anthropic/claude-haiku-4-5", "anthropic/messages-nonstream.yaml", 9997, 12000000),
    "mistral": ("mistral/mistral-small-latest", "mistral/chat-nonstream.yaml", 99, 98321),
}


def test_what_each_providers_rate_limits_have_left(tmp_path: Path) -> None:
    """litellm_remaining_requests_metric / _tokens_metric from the headers of the providers' real
    answers (OpenAI's, Anthropic's and Mistral's names), per deployment."""
    from tests.wire import load

    answers = {}
    for name, (_, recording, _, _) in RECORDED.items():
        exchange = load(recording)[-1]
        answers[name] = MockResponse(exchange.status, exchange.response_body, exchange.response_headers)

    def recorded(call: UpstreamRequest) -> MockResponse:
        return answers[call.url.split("//")[1].split(".")[0]]

    config = {"model_list": [
        deployment(name, model, api_base=f"http://{name}.test", model_info={"id": f"{name}-1"})
        for name, (model, _, _, _) in RECORDED.items()
    ]}  # fmt: skip
    app = metered(tmp_path, config, recorded)
    for name in RECORDED:
        assert request(app, "POST", "/v1/chat/completions", {**CHAT, "model": name}).status == 200
    got = scrape(app)
    for name, (model, _, requests_left, tokens_left) in RECORDED.items():
        labels = {"model_group": name, "model_id": f"{name}-1", "api_provider": model.split("/")[0],
                  "api_base": f"http://{name}.test", "litellm_model_name": name, "hashed_api_key": ""}  # fmt: skip
        assert value(got, "litellm_remaining_requests_metric", **labels) == requests_left, name
        assert value(got, "litellm_remaining_tokens_metric", **labels) == tokens_left, name


class Refuse(Hook):
    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        raise RateLimited("5 requests a minute", headers={"retry-after": "60"})


def test_requests_the_gateway_refuses_as_rate_limited(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, extra=[Refuse()])
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 429
    got = scrape(app)
    assert value(got, "seance_rate_limited_requests_total", requested_model="gpt") == 1
    assert value(got, "litellm_proxy_failed_requests_metric_total", exception_status="429") == 1


class Cached(Hook):
    """Answers every other request from a "cache", as the cache hook does."""

    def __init__(self) -> None:
        self.calls = 0

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        self.calls += 1
        ctx.cache_checked = True
        if self.calls % 2 == 0:
            ctx.cache_hit = True
            return Answer(ANSWER)
        return None


def test_cache_hits_and_misses(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, extra=[Cached()])
    for _ in range(4):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    got = scrape(app)
    assert value(got, "seance_cache_requests_total", result="hit", requested_model="gpt") == 2
    assert value(got, "seance_cache_requests_total", result="miss", requested_model="gpt") == 2


def test_the_response_cache_counts_its_hits_and_misses(tmp_path: Path) -> None:
    app = metered(
        tmp_path,
        {"model_list": [deployment("gpt", "openai/gpt-4o")]},
        extra=[Cache(CacheConfig("local"), LocalStore(2**20))],
    )
    for _ in range(3):
        assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    got = scrape(app)
    assert value(got, "seance_cache_requests_total", result="miss", requested_model="gpt") == 1
    assert value(got, "seance_cache_requests_total", result="hit", requested_model="gpt") == 2
    # LiteLLM's: the same counts, and the tokens of the answers served (7 + 3 each)
    assert value(got, "litellm_cache_misses_metric_total", model="gpt", api_provider="openai") == 1
    assert value(got, "litellm_cache_hits_metric_total", model="gpt", hashed_api_key=MASTER_KEY_ALIAS) == 2
    assert value(got, "litellm_cached_tokens_metric_total", model="gpt") == 20
    # a hit is not a call to the deployment
    assert value(got, "litellm_deployment_total_requests_total", requested_model="gpt") == 1


class VirtualKey(Hook):
    async def on_request(self, ctx: RequestContext) -> None:
        ctx.caller = Caller("virtual_key", key_hash="ab" * 32, key_alias="ci-bot", team_id="team-7", user_id="u1")


def test_a_virtual_key_is_labelled_by_a_hash_prefix_and_its_alias(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, extra=[VirtualKey()])
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    text = request(app, "GET", "/metrics").body.decode()
    assert "ab" * 32 not in text and KEY not in text and "sk-up" not in text
    got = scrape(app)
    assert value(
        got, "litellm_proxy_total_requests_metric_total",
        hashed_api_key="ab" * 6, api_key_alias="ci-bot", team="team-7", user="u1", end_user="",
    ) == 1  # fmt: skip


def test_the_master_keys_requests_are_labelled_as_litellm_labels_them(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]})
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    text = request(app, "GET", "/metrics").body.decode()
    assert KEY not in text and hashlib.sha256(KEY.encode()).hexdigest()[:12] not in text
    got = scrape(app)
    who = {"hashed_api_key": "litellm_proxy_master_key", "api_key_alias": "", "user": "default_user_id"}
    assert value(got, "litellm_proxy_total_requests_metric_total", **who, team="", end_user="") == 1
    assert value(got, "litellm_input_tokens_metric_total", **who) == 7
    assert value(got, "litellm_deployment_total_requests_total", hashed_api_key=MASTER_KEY_ALIAS) == 1


def test_metrics_want_a_key_unless_opened(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, env={"SEANCE_METRICS_KEY": "mk-1"})
    assert request(app, "GET", "/metrics", headers={"authorization": ""}).status == 401
    assert request(app, "GET", "/metrics", headers={"authorization": "Bearer nope"}).status == 401
    assert request(app, "GET", "/metrics", headers={"authorization": "Bearer mk-1"}).status == 200
    assert request(app, "GET", "/metrics").status == 200  # the master key
    opened = metered(
        tmp_path,
        {"model_list": [deployment("gpt", "openai/gpt-4o")],
         "litellm_settings": {"callbacks": ["prometheus"], "require_auth_for_metrics_endpoint": False}},
    )  # fmt: skip
    assert request(opened, "GET", "/metrics", headers={"authorization": ""}).status == 200


def test_metrics_off_answer_404_saying_how_to_turn_them_on(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({"model_list": [deployment("gpt", "openai/gpt-4o")]}))
    settings = load_settings(path, {"LITELLM_MASTER_KEY": KEY})
    assert not settings.metrics
    app = Gateway(settings, [Auth(KEY, False)], MockTransport(answer))
    result = request(app, "GET", "/metrics")
    assert result.status == 404
    assert "callbacks" in result.json()["error"]["message"]


@pytest.mark.parametrize(
    "section",
    [{"callbacks": ["prometheus"]}, {"callbacks": "prometheus"}, {"success_callback": ["langfuse", "prometheus"]}],
)
def test_litellm_turns_prometheus_on_with_callbacks(tmp_path: Path, section: dict[str, Any]) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({"model_list": [deployment("gpt", "openai/gpt-4o")], "litellm_settings": section}))
    assert load_settings(path, {}).metrics


def test_other_callbacks_are_named_in_the_start_warning(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    config = {
        "model_list": [deployment("gpt", "openai/gpt-4o")],
        "litellm_settings": {"callbacks": ["prometheus", "langfuse"]},
    }
    path.write_bytes(orjson.dumps(config))
    settings = load_settings(path, {}, announce=False)
    assert settings.metrics
    (ignored,) = settings.ignored
    assert ignored.path == "litellm_settings.callbacks"
    assert ignored.note.startswith("langfuse: not implemented")
    quiet = tmp_path / "quiet.yaml"
    quiet.write_bytes(orjson.dumps({**config, "litellm_settings": {"callbacks": ["prometheus"]}}))
    assert load_settings(quiet, {}, announce=False).ignored == ()


def test_the_docs_table_names_every_metric(tmp_path: Path) -> None:
    """docs/gateway.md's metrics table and the metrics /metrics shows are the same set (counters
    as their samples are named, with _total)."""
    import re

    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]})
    metrics = app.metrics.metrics
    assert metrics is not None and metrics.registry is not None

    async def no_budgets(limit: int) -> list[Any]:
        return []

    metrics.watch_budgets(no_budgets)  # as with a store: the budget gauges' families, empty
    shown = {
        f"{family.name}_total" if family.type == "counter" else family.name for family in metrics.registry.collect()
    }
    doc = (Path(__file__).resolve().parents[3] / "docs" / "gateway.md").read_text()
    table = doc.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for line in table.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])
    }
    assert documented == shown


def label_names(app: Gateway) -> dict[str, set[str]]:
    """Each prometheus_client metric's label names, by its name (prometheus_client keeps them on
    the metric only)."""
    metrics = app.metrics.metrics
    assert metrics is not None and metrics.registry is not None
    return {
        collector._name: set(collector._labelnames)  # type: ignore[attr-defined]
        for collector in list(metrics.registry._collector_to_names)  # type: ignore[attr-defined]
        if hasattr(collector, "_labelnames")
    }


# LiteLLM's labels Seance leaves out: what a client makes up (its IP, its user agent: unbounded),
# and the service tier of an answer (not read from the providers' answers)
LEFT_OUT = {"client_ip", "user_agent", "service_tier"}


def test_each_metric_has_litellms_labels(tmp_path: Path) -> None:
    """Every metric of LiteLLM's name has LiteLLM 1.108's label names (its table, read from the
    package into tests/fixtures/litellm/prometheus_labels.json), but for those left out on purpose:
    a LiteLLM dashboard grouping or filtering on one finds it."""
    table = Path(__file__).resolve().parents[2] / "fixtures" / "litellm" / "prometheus_labels.json"
    litellm = orjson.loads(table.read_bytes())
    ours = label_names(metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}))
    shared = sorted(set(ours) & set(litellm))
    assert len(shared) >= 20
    missing = {name: sorted(set(litellm[name]) - ours[name] - LEFT_OUT) for name in shared}
    assert {name: labels for name, labels in missing.items() if labels} == {}


def test_requests_are_labelled_by_route_deployment_team_alias_and_email(tmp_path: Path) -> None:
    app = metered(
        tmp_path,
        {"model_list": [deployment("gpt", "openai/gpt-4o", model_info={**PRICES, "id": "gpt-east"})]},
        extra=[Emailed()],
    )
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    assert request(app, "POST", "/chat/completions/", CHAT).status == 200  # (a trailing slash: the same route)
    got = scrape(app)
    who = {"team": "team-7", "team_alias": "Search", "user_email": "ada@example.com"}
    answered = {"model_id": "gpt-east", "api_provider": "openai"}
    total = "litellm_proxy_total_requests_metric_total"
    assert value(got, total, **who, **answered, route="/v1/chat/completions", status_code="200") == 1
    assert value(got, total, **who, **answered, route="/chat/completions", status_code="200") == 1
    assert value(got, "litellm_requests_metric_total", **who, **answered, requested_model="gpt", model="gpt") == 2
    assert value(got, "litellm_input_tokens_metric_total", **who, **answered) == 14
    spend = value(got, "litellm_spend_metric_total", **who, **answered, requested_model="gpt")
    assert spend == pytest.approx(2 * 13e-6)
    assert value(got, "litellm_request_total_latency_metric_count", model_group="gpt", **answered) == 2
    assert value(got, "litellm_deployment_total_requests_total", team_alias="Search") == 2


def test_a_refused_request_names_no_deployment_and_does_not_count_as_a_success(tmp_path: Path) -> None:
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, extra=[Refuse()])
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 429
    got = scrape(app)
    failed = "litellm_proxy_failed_requests_metric_total"
    assert value(got, failed, route="/v1/chat/completions", model_id="", api_provider="", exception_status="429") == 1
    assert value(got, "litellm_requests_metric_total") == 0


class Emailed(Hook):
    async def on_request(self, ctx: RequestContext) -> None:
        ctx.caller = Caller(
            "virtual_key", key_hash="cd" * 32, key_alias="ci", team_id="team-7", team_alias="Search",
            user_id="u1", user_email="ada@example.com",
        )  # fmt: skip


def test_the_docs_grafana_queries_name_metrics_and_labels_that_exist(tmp_path: Path) -> None:
    """docs/gateway.md's PromQL: each metric it reads is one /metrics shows, and each label it groups
    by is one of that line's metrics' (a query that finds nothing shows an empty panel, no error)."""
    import re

    from seance.gateway.budget_metrics import KINDS

    families = label_names(metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}))
    for word, _, kind_labels in KINDS.values():  # (the budget gauges: a collector of the store's rows)
        for name in (f"litellm_remaining_{word}_budget_metric", f"litellm_{word}_max_budget_metric"):
            families[name] = set(kind_labels)
    # as samples are named: a counter's _total, a histogram's _bucket (by `le`), _count and _sum
    labels = {
        name + suffix: names | {"le"}
        for name, names in families.items()
        for suffix in ("", "_total", "_bucket", "_count", "_sum")
    }
    doc = (Path(__file__).resolve().parents[3] / "docs" / "gateway.md").read_text()
    block = doc.split("A Grafana panel's queries", 1)[1].split("```promql\n", 1)[1].split("```", 1)[0]
    lines = [line for line in block.splitlines() if line and not line.startswith("#")]
    assert len(lines) >= 10
    for line in lines:
        used = re.findall(r"\b((?:litellm|seance)_[a-z_]+)", line)
        assert used and all(name in labels for name in used), line
        grouped = {label.strip() for group in re.findall(r"by \(([^)]*)\)", line) for label in group.split(",")}
        assert all(any(label in labels[name] for name in used) for label in grouped), line


def test_a_success_makes_no_failure_series(tmp_path: Path) -> None:
    """A counter's series shows on /metrics once made, at 0: none of a failure for a 200."""
    app = metered(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]})
    assert request(app, "POST", "/v1/chat/completions", CHAT).status == 200
    got = scrape(app)
    assert got.get("litellm_proxy_failed_requests_metric_total", []) == []
    assert got.get("seance_rate_limited_requests_total", []) == []
