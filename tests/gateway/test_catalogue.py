"""The price catalogue: the shipped copy of LiteLLM's map (trimmed, in its format), a user's own
file in its place, the rates of each kind of token, and what each provider's recorded usage costs
through the gateway (cached, cache-written and reasoning tokens at their own rates; streams too)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.gateway.asgi_client import deployment, make_app, request
from tests.wire import load

from seance.gateway import catalogue
from seance.gateway.catalogue import Prices, Rates
from seance.gateway.catalogue.__main__ import main as trim
from seance.gateway.config import ConfigError, load_settings
from seance.gateway.context import RequestContext
from seance.gateway.formats.openai import Usage
from seance.gateway.pipeline import Hook
from seance.gateway.providers import REGISTRY, load_adapter
from seance.gateway.routing.deployments import Deployments
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

SHIPPED: dict[str, Any] = json.loads(
    resources.files("seance.gateway.catalogue").joinpath(catalogue.SHIPPED).read_text(encoding="utf-8")
)
PROVIDERS = {name for prefix in REGISTRY if (a := load_adapter(prefix)) for name in a.catalogue_names}


def price(key: str, name: str) -> float:
    value: float = SHIPPED[key].get(name, 0.0)
    return value


class Seen(Hook):
    needs_usage = True

    def __init__(self) -> None:
        self.ctx: RequestContext | None = None

    async def after(self, ctx: RequestContext) -> None:
        self.ctx = ctx


# -- the file --


def test_the_shipped_file_is_litellms_format_trimmed_to_what_seance_serves() -> None:
    assert "sample_spec" not in SHIPPED
    assert catalogue.served(SHIPPED, PROVIDERS, "shipped") == SHIPPED  # nothing else in it
    assert {e["litellm_provider"] for e in SHIPPED.values()} <= PROVIDERS
    assert {e.get("mode", "chat") for e in SHIPPED.values()} <= catalogue.SERVED_MODES
    # the providers the map prices, each with models
    for provider in ("openai", "anthropic", "gemini", "mistral", "cohere_chat", "groq", "deepseek", "together_ai",
                     "replicate", "ollama", "azure", "text-completion-codestral"):  # fmt: skip
        assert any(e["litellm_provider"] == provider for e in SHIPPED.values()), provider


def test_the_trimming_tool_made_the_shipped_file(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    shipped = resources.files("seance.gateway.catalogue").joinpath(catalogue.SHIPPED)
    with resources.as_file(shipped) as path:
        trim(str(path))
    assert capsysbinary.readouterr().out == shipped.read_bytes()  # trimming it again changes nothing


def test_the_deployments_find_their_models_in_the_shipped_catalogue(tmp_path: Path) -> None:
    table = {
        "openai/gpt-4o": "gpt-4o",
        "anthropic/claude-haiku-4-5": "claude-haiku-4-5",
        "gemini/gemini-2.5-flash": "gemini/gemini-2.5-flash",
        "mistral/mistral-small-latest": "mistral/mistral-small-latest",
        "cohere/command-a-03-2025": "command-a-03-2025",
        "cohere_chat/command-r-08-2024": "command-r-08-2024",
        "deepseek/deepseek-chat": "deepseek/deepseek-chat",
        "text-completion-openai/gpt-3.5-turbo-instruct": "gpt-3.5-turbo-instruct",
        "text-completion-codestral/codestral-latest": "text-completion-codestral/codestral-latest",
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo": "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "groq/openai/gpt-oss-20b": "groq/openai/gpt-oss-20b",
    }
    config = {"model_list": [deployment(f"m{i}", model) for i, model in enumerate(table)]}
    table_of = _deployments(tmp_path, config)
    for i, key in enumerate(table.values()):
        (found,) = table_of.lookup(f"m{i}")
        assert found.prices is not None, key
        assert found.prices.base.input == pytest.approx(SHIPPED[key]["input_cost_per_token"]), key
        assert found.info["max_input_tokens"] == SHIPPED[key]["max_input_tokens"], key


def test_azure_deployments_are_priced_by_base_model(tmp_path: Path) -> None:
    config = {"model_list": [
        deployment("mine", "azure/my-deployment", api_version="2024-06-01", model_info={"base_model": "azure/gpt-4o"}),
        deployment("unknown", "azure/my-deployment", api_version="2024-06-01"),
    ]}  # fmt: skip
    table = _deployments(tmp_path, config)
    (mine,) = table.lookup("mine")
    assert mine.prices is not None and mine.prices.base.input == SHIPPED["azure/gpt-4o"]["input_cost_per_token"]
    (unknown,) = table.lookup("unknown")
    assert unknown.prices is None and unknown.cost(Usage(10, 10)) is None  # no price: no cost, not 0


def test_a_users_prices_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    own = tmp_path / "prices.json"
    own.write_bytes(orjson.dumps({
        "sample_spec": {"input_cost_per_token": 0.0, "max_input_tokens": "max input tokens"},
        "gpt-4o": {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1.0,
                   "output_cost_per_token": 2.0, "max_input_tokens": 7},
        "dall-e-3": {"litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04},
        "bedrock/x": {"litellm_provider": "bedrock", "mode": "chat", "input_cost_per_token": 1.0},
    }))  # fmt: skip
    config = {"model_list": [deployment("gpt", "openai/gpt-4o"), deployment("mini", "openai/gpt-4o-mini")]}
    for env in ({"SEANCE_MODEL_PRICES": str(own)}, {"LITELLM_MODEL_COST_MAP_URL": own.as_uri()}):
        table = _deployments(tmp_path, config, env)
        assert list(table.catalogue.entries) in ([], ["gpt-4o"])  # kept only for wildcards
        (gpt,) = table.lookup("gpt")
        assert gpt.cost(Usage(3, 4)) == pytest.approx(3 * 1.0 + 4 * 2.0)
        assert gpt.info["max_input_tokens"] == 7
        (mini,) = table.lookup("mini")
        assert mini.prices is None  # not in the user's file
    # LiteLLM's litellm_settings key, a plain path
    config_with_setting = {**config, "litellm_settings": {"model_cost_map_url": str(own)}}
    (gpt,) = _deployments(tmp_path, config_with_setting).lookup("gpt")
    assert gpt.cost(Usage(1, 0)) == 1.0


def test_a_url_is_not_fetched_the_shipped_file_is_used_with_a_warning(tmp_path: Path) -> None:
    url = "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
    table = _deployments(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]},
                         {"LITELLM_MODEL_COST_MAP_URL": url})  # fmt: skip
    assert any("LITELLM_MODEL_COST_MAP_URL" in w and "not fetched" in w for w in table.warnings)
    (gpt,) = table.lookup("gpt")
    assert gpt.prices is not None and gpt.prices.base.input == SHIPPED["gpt-4o"]["input_cost_per_token"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not a JSON model prices file"),
        (b"[1, 2]", "a JSON object of model entries"),
        (b'{"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": "cheap"}}',
         "gpt-4o.input_cost_per_token: must be a number of USD per token, not 'cheap'"),
        (b'{"gpt-4o": {"litellm_provider": "openai", "output_cost_per_token": -1}}',
         "gpt-4o.output_cost_per_token: must be a number"),
    ],
)  # fmt: skip
def test_a_broken_prices_file_stops_the_start_saying_where(tmp_path: Path, content: bytes, message: str) -> None:
    own = tmp_path / "prices.json"
    own.write_bytes(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")) as caught:
        _deployments(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, {"SEANCE_MODEL_PRICES": str(own)})
    assert str(own) in str(caught.value)
    with pytest.raises(ConfigError, match="cannot read the model prices file"):
        missing = {"SEANCE_MODEL_PRICES": str(tmp_path / "missing.json")}
        _deployments(tmp_path, {"model_list": [deployment("gpt", "openai/gpt-4o")]}, missing)


# -- the rates --


def test_each_kind_of_token_is_charged_at_its_rate() -> None:
    rates = Rates(input=1.0, output=10.0, cache_read=0.1, cache_write=1.25, reasoning=20.0)
    usage = Usage(100, 50, cached_tokens=60, cache_creation_tokens=30, reasoning_tokens=20)
    assert rates.cost(usage) == pytest.approx(10 * 1.0 + 60 * 0.1 + 30 * 1.25 + 30 * 10.0 + 20 * 20.0)


def test_cached_and_reasoning_rates_default_to_the_plain_ones() -> None:
    prices = Prices.of({"input_cost_per_token": 2.0, "output_cost_per_token": 3.0})
    assert prices is not None
    assert prices.base == Rates(2.0, 3.0, 2.0, 2.0, 3.0)
    assert Prices.of({"max_input_tokens": 5}) is None
    deepseek = Prices.of({"input_cost_per_token": 2.0, "input_cost_per_token_cache_hit": 0.5})
    assert deepseek is not None and deepseek.base.cache_read == 0.5


def test_long_context_tiers_bill_the_whole_request_above_the_threshold() -> None:
    entry = SHIPPED["gemini/gemini-2.5-pro"]
    prices = Prices.of(entry)
    assert prices is not None
    small, large = Usage(200_000, 1000), Usage(200_001, 1000)
    assert prices.cost(small) == pytest.approx(
        200_000 * entry["input_cost_per_token"] + 1000 * entry["output_cost_per_token"]
    )
    assert prices.cost(large) == pytest.approx(
        200_001 * entry["input_cost_per_token_above_200k_tokens"]
        + 1000 * entry["output_cost_per_token_above_200k_tokens"]
    )


def test_overrides_in_model_info_and_litellm_params_win_over_the_catalogue(tmp_path: Path) -> None:
    config = {"model_list": [
        deployment("info", "openai/gpt-4o",
                   model_info={"input_cost_per_token": 1.0, "cache_read_input_token_cost": 0.5}),
        deployment("params", "openai/gpt-4o", output_cost_per_token=3.0),
        deployment("both", "openai/gpt-4o", input_cost_per_token=7.0, model_info={"input_cost_per_token": 9.0}),
    ]}  # fmt: skip
    table = _deployments(tmp_path, config)
    catalogue_out = SHIPPED["gpt-4o"]["output_cost_per_token"]
    (info,) = table.lookup("info")
    assert info.cost(Usage(10, 2, cached_tokens=4)) == pytest.approx(6 * 1.0 + 4 * 0.5 + 2 * catalogue_out)
    (params,) = table.lookup("params")
    assert params.cost(Usage(10, 2)) == pytest.approx(10 * SHIPPED["gpt-4o"]["input_cost_per_token"] + 2 * 3.0)
    (both,) = table.lookup("both")
    assert both.prices is not None and both.prices.base.input == 9.0  # model_info, then litellm_params
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.model_info\.input_cost_per_token: must be a number"):
        _deployments(
            tmp_path, {"model_list": [deployment("x", "openai/gpt-4o", model_info={"input_cost_per_token": "1"})]}
        )
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.output_cost_per_token: must be a number"):
        _deployments(tmp_path, {"model_list": [deployment("x", "openai/gpt-4o", output_cost_per_token=-2)]})


# -- what each provider's recorded answers cost, through the gateway --

CHAT = [{"role": "user", "content": "hi"}]


def _anthropic(u: dict[str, Any], key: str) -> float:
    return (
        u["input_tokens"] * price(key, "input_cost_per_token")
        + u.get("cache_read_input_tokens", 0) * price(key, "cache_read_input_token_cost")
        + u.get("cache_creation_input_tokens", 0) * price(key, "cache_creation_input_token_cost")
        + u["output_tokens"] * price(key, "output_cost_per_token")
    )


def _gemini(u: dict[str, Any], key: str) -> float:
    return (
        u["promptTokenCount"] * price(key, "input_cost_per_token")
        + u["candidatesTokenCount"] * price(key, "output_cost_per_token")
        + u.get("thoughtsTokenCount", 0) * price(key, "output_cost_per_reasoning_token")
    )


def _openai(u: dict[str, Any], key: str) -> float:
    return u["prompt_tokens"] * price(key, "input_cost_per_token") + u.get("completion_tokens", 0) * price(
        key, "output_cost_per_token"
    )


def _cohere(u: dict[str, Any], key: str) -> float:
    tokens = u["tokens"]
    return tokens["input_tokens"] * price(key, "input_cost_per_token") + tokens["output_tokens"] * price(
        key, "output_cost_per_token"
    )


RECORDED = [
    # (recording, deployment model, catalogue key, usage of the raw answer, expected cost from it)
    ("openai/chat-nonstream.httprr.txt", "openai/gpt-4o-mini", "gpt-4o-mini", "usage", _openai),
    ("openai/embeddings-float-dimensions.httprr.txt", "openai/text-embedding-3-small", "text-embedding-3-small",
     "usage", _openai),
    ("anthropic/messages-nonstream.yaml", "anthropic/claude-haiku-4-5", "claude-haiku-4-5", "usage", _anthropic),
    ("gemini/generate-content.yaml", "gemini/gemini-2.5-flash", "gemini/gemini-2.5-flash", "usageMetadata", _gemini),
    ("mistral/chat-nonstream.yaml", "mistral/mistral-small-latest", "mistral/mistral-small-latest", "usage", _openai),
    ("cohere/chat-v2-nonstream.yaml", "cohere/command-a-03-2025", "command-a-03-2025", "usage", _cohere),
    ("together/chat-nonstream.json", "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
     "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "usage", _openai),
]  # fmt: skip


@pytest.mark.parametrize(("recording", "model", "key", "field", "expected"), RECORDED, ids=[r[0] for r in RECORDED])
def test_the_cost_of_each_providers_recorded_answer(
    tmp_path: Path, recording: str, model: str, key: str, field: str, expected: Any
) -> None:
    exchange = load(recording)[0]
    raw = orjson.loads(exchange.response_body)
    cost = expected(raw[field] if field in raw else raw["meta"], key)
    seen = Seen()

    def replay(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, exchange.response_body, {"content-type": "application/json"})

    app, _ = make_app(tmp_path, {"model_list": [deployment("m", model)]}, replay, [seen])
    embedding = "embedding" in recording
    path, body = (
        ("/v1/embeddings", {"model": "m", "input": "hi"})
        if embedding
        else ("/v1/chat/completions", {"model": "m", "messages": CHAT})
    )
    answer = request(app, "POST", path, body)
    assert answer.status == 200, answer.body
    assert cost > 0
    assert float(answer.headers["x-litellm-response-cost"]) == pytest.approx(cost, rel=1e-12)
    assert seen.ctx is not None and seen.ctx.cost == pytest.approx(cost, rel=1e-12)


def test_anthropic_cache_reads_and_writes_are_charged_at_their_rates(tmp_path: Path) -> None:
    exchange = load("anthropic/messages-nonstream.yaml")[0]
    raw = orjson.loads(exchange.response_body)
    # the same answer, as it comes when the prompt cache is in use
    raw["usage"].update({"input_tokens": 10, "cache_read_input_tokens": 2000, "cache_creation_input_tokens": 300})
    app, _ = make_app(tmp_path, {"model_list": [deployment("m", "anthropic/claude-haiku-4-5")]},
                      lambda _: MockResponse(200, orjson.dumps(raw)))  # fmt: skip
    answer = request(app, "POST", "/v1/chat/completions", {"model": "m", "messages": CHAT})
    expected = _anthropic(raw["usage"], "claude-haiku-4-5")
    assert float(answer.headers["x-litellm-response-cost"]) == pytest.approx(expected, rel=1e-12)
    plain = (10 + 2000 + 300) * price("claude-haiku-4-5", "input_cost_per_token")
    assert expected < plain  # reading the cache is cheaper than sending the prompt


def test_openai_cached_and_reasoning_tokens_of_a_pass_through_answer(tmp_path: Path) -> None:
    exchange = load("openai/chat-nonstream.httprr.txt")[0]
    body = exchange.response_body.replace(b'"cached_tokens": 0', b'"cached_tokens": 8').replace(
        b'"reasoning_tokens": 0', b'"reasoning_tokens": 20'
    )
    seen = Seen()
    config = {"model_list": [deployment("m", "openai/o3-mini")]}
    app, _ = make_app(tmp_path, config, lambda _: MockResponse(200, body), [seen])
    answer = request(app, "POST", "/v1/chat/completions", {"model": "m", "messages": CHAT})
    assert answer.body == body  # forwarded as it came
    assert seen.ctx is not None and seen.ctx.usage is not None
    assert (seen.ctx.usage.cached_tokens, seen.ctx.usage.reasoning_tokens) == (8, 20)
    usage = orjson.loads(body)["usage"]
    key = "o3-mini"
    expected = (
        (usage["prompt_tokens"] - 8) * price(key, "input_cost_per_token")
        + 8 * price(key, "cache_read_input_token_cost")
        + usage["completion_tokens"] * price(key, "output_cost_per_token")  # reasoning: the output rate here
    )
    assert float(answer.headers["x-litellm-response-cost"]) == pytest.approx(expected, rel=1e-12)


STREAMS = [
    ("openai/chat-stream-include-usage.httprr.txt", "openai/gpt-4o-mini", "gpt-4o-mini"),
    ("anthropic/messages-stream-thinking.yaml", "anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
    ("gemini/stream-generate-content-sse-thinking.yaml", "gemini/gemini-3-flash-preview",
     "gemini/gemini-3-flash-preview"),
    ("mistral/chat-stream.yaml", "mistral/mistral-small-latest", "mistral/mistral-small-latest"),
    ("cohere/chat-v2-stream.yaml", "cohere/command-a-03-2025", "command-a-03-2025"),
]  # fmt: skip


@pytest.mark.parametrize(("recording", "model", "key"), STREAMS, ids=[s[0] for s in STREAMS])
def test_a_streams_cost_is_on_the_context_after_its_final_usage(
    tmp_path: Path, recording: str, model: str, key: str
) -> None:
    exchange = load(recording)[0]
    body = exchange.response_body
    seen = Seen()

    def replay(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, [body[i : i + 113] for i in range(0, len(body), 113)],
                            {"content-type": "text/event-stream"})  # fmt: skip

    app, _ = make_app(tmp_path, {"model_list": [deployment("m", model)]}, replay, [seen])
    # the client does not ask for usage: the gateway does, for the after-hooks
    answer = request(app, "POST", "/v1/chat/completions", {"model": "m", "messages": CHAT, "stream": True})
    assert answer.status == 200
    assert "x-litellm-response-cost" not in answer.headers  # sent before the usage was known
    usage = _last_usage(body)
    expected = {"usage": _openai, "anthropic": _anthropic, "gemini": _gemini, "cohere": _cohere}[usage[0]](
        usage[1], key
    )
    assert expected > 0
    assert seen.ctx is not None and seen.ctx.cost == pytest.approx(expected, rel=1e-12)


def _last_usage(body: bytes) -> tuple[str, dict[str, Any]]:
    """The raw usage the provider sent last in a stream, and whose shape it has."""
    for line in reversed(body.replace(b"\r", b"").split(b"\n")):
        if not line.startswith(b"data:") or line.strip() == b"data: [DONE]":
            continue
        data = orjson.loads(line[5:])
        if "usageMetadata" in data:
            return "gemini", data["usageMetadata"]
        if data.get("type") == "message_delta":
            start = next(
                orjson.loads(x[5:]) for x in body.split(b"\n") if b'"message_start"' in x and x.startswith(b"data:")
            )
            return "anthropic", {**start["message"]["usage"], **data["usage"]}
        if data.get("type") == "message-end":
            return "cohere", data["delta"]["usage"]
        if data.get("usage"):
            return "usage", data["usage"]
    raise AssertionError("no usage in the stream")


def _deployments(tmp_path: Path, config: dict[str, Any], env: dict[str, str] | None = None) -> Deployments:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps(config))
    return Deployments(load_settings(path, {"LITELLM_MASTER_KEY": "sk-m", **(env or {})}, announce=False))
