"""What is measured: each scenario's request, expected answer and concurrency, per kind of target.

Gateways get OpenAI-format requests on /v1/chat/completions (Anthropic upstreams are translated);
the direct target posts to the fake upstream's own route in that upstream's own format.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bodies import (
    ANSWER_TAIL,
    ANTHROPIC_STREAM_EVENTS,
    LAST_TOKEN,
    OPENAI_STREAM_CHUNKS,
    anthropic_request,
    chat_request,
    embeddings_request,
)
from load import Check


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    connections: int
    model: str  # the model_name gateways are asked for
    upstream_path: str  # the fake upstream's route, what the direct target calls
    kind: str  # chat | stream | embeddings | anthropic | anthropic-stream
    vary: bool = False  # every request a new body (a new "seed"): a response cache never hits

    @property
    def gateway_path(self) -> str:
        return "/v1/embeddings" if self.kind == "embeddings" else "/v1/chat/completions"

    def request(self, direct: bool) -> str:
        if self.kind == "embeddings":
            return embeddings_request(self.model)
        if self.kind.startswith("anthropic") and direct:
            return anthropic_request("claude-haiku-4-5", stream=self.kind == "anthropic-stream")
        return chat_request(self.model, stream=self.kind.endswith("stream"))

    def check(self, direct: bool) -> Check:
        if self.kind == "chat":
            return Check((ANSWER_TAIL,))
        if self.kind == "stream":
            # Every upstream chunk plus [DONE]; the usage chunk must survive.
            return Check((LAST_TOKEN, "total_tokens", "[DONE]"), OPENAI_STREAM_CHUNKS + 1)
        if self.kind == "embeddings":
            return Check(('"embedding"', "prompt_tokens"))
        if self.kind == "anthropic":
            return Check((ANSWER_TAIL, "end_turn")) if direct else Check((ANSWER_TAIL, "chat.completion"))
        if direct:
            return Check((LAST_TOKEN, "message_stop"), ANTHROPIC_STREAM_EVENTS)
        # Translated: at least one chunk per text delta, a usage chunk and [DONE].
        text_deltas = ANTHROPIC_STREAM_EVENTS - 6
        return Check((LAST_TOKEN, "total_tokens", "[DONE]"), text_deltas + 2)


SCENARIOS = [
    Scenario("chat-c1", "chat c=1", 1, "bench-openai", "/v1/chat/completions", "chat"),
    Scenario("chat-c16", "chat c=16", 16, "bench-openai", "/v1/chat/completions", "chat"),
    Scenario("chat-c64", "chat c=64", 64, "bench-openai", "/v1/chat/completions", "chat"),
    Scenario("stream-c16", "stream 20 chunks c=16", 16, "bench-stream", "/stream/v1/chat/completions", "stream"),
    Scenario("slow-c256", "50 ms upstream c=256", 256, "bench-slow", "/slow/v1/chat/completions", "chat"),
    # Two deployments, one failing 20 % of its requests (upstream.py): retries and cooldowns as
    # ROUTER_SETTINGS set them. The direct target calls the healthy route: the floor.
    Scenario(
        "flaky-c16", "flaky: 2 deployments, one failing 20 % c=16", 16, "bench-flaky", "/v1/chat/completions", "chat"
    ),
    Scenario("embed-c16", "embeddings c=16", 16, "bench-embed", "/v1/embeddings", "embeddings"),
    Scenario("anthropic-c64", "anthropic c=64", 64, "bench-anthropic", "/anthropic/v1/messages", "anthropic"),
    Scenario(
        "anthropic-stream-c16",
        "anthropic stream 20 events c=16",
        16,
        "bench-anthropic-stream",
        "/anthropic-stream/v1/messages",
        "anthropic-stream",
    ),
]


# Measured on every target; the seance-cache targets run only these. On a gateway without a cache
# both are plain pass-through chat: the baseline of the same run.
CACHE_SCENARIOS = [
    Scenario("cache-hit-c64", "cache hit: chat c=64, one body", 64, "bench-openai", "/v1/chat/completions", "chat"),
    Scenario(
        "cache-miss-c64",
        "cache miss: chat c=64, every body new",
        64,
        "bench-openai",
        "/v1/chat/completions",
        "chat",
        vary=True,
    ),
]


def cache_settings(kind: str, namespace: str) -> str:
    """The litellm_settings that turn the response cache on, appended to gateway_config's file.
    Redis entries of the miss runs live 30 s: the shared Redis is not filled for long."""
    return "\n".join(["litellm_settings:", *_cache_lines(kind, namespace)]) + "\n"


def _cache_lines(kind: str, namespace: str) -> list[str]:
    lines = ["  cache: true", "  cache_params:", f"    type: {kind}"]
    if kind == "redis":
        lines += ["    host: 127.0.0.1", "    port: 6379", f"    namespace: {namespace}", "    ttl: 30"]
    return lines


@dataclass(frozen=True)
class Features:
    """Issue 10's features on together, as a LiteLLM-format config.yaml sets them (the all-features
    targets): the response cache (`cache` local or redis, under `namespace`), Prometheus metrics
    (`callbacks: ["prometheus"]`) and the rate limits a config can set without a database: per
    deployment rpm/tpm, enforced with `enable_pre_call_checks` (LiteLLM's router also holds each
    deployment's calls to `rpm` at once). Not `general_settings.global_max_parallel_requests`: only
    LiteLLM's legacy limiter reads it (LEGACY_MULTI_INSTANCE_RATE_LIMITING=true), the default one
    does not. Every limit is far above what a run reaches: the runs measure what checking and
    counting cost, never a refusal."""

    cache: str  # local | redis
    namespace: str


DEPLOYMENT_LIMITS = {"rpm": 10**9, "tpm": 10**12}


def _features_sections(features: Features) -> list[str]:
    return [
        "litellm_settings:",
        *_cache_lines(features.cache, features.namespace),
        '  callbacks: ["prometheus"]',
    ]


# Scenario kinds an all-features target runs: the chat requests a "seed" can make new (a miss each).
FEATURE_KINDS = ("chat", "stream")


def as_miss(scenario: Scenario) -> Scenario:
    """The scenario as an all-features target runs it: every body new, so the cache is on the miss
    path (key, lookup, capture, store) on every request, as for a chat API's usual traffic; only
    cache-hit-c64 repeats its body. A repeated chat-c64 would measure the hit path instead."""
    return scenario if scenario.key == "cache-hit-c64" else dataclasses.replace(scenario, vary=True)


# What a LiteLLM user sets for a group with a flaky deployment (LiteLLM's router_settings): two
# retries; a deployment failing more than 3 times in a minute is skipped for a while. That while
# is 1 s here, not the usual 30: the flaky deployment is back every second of the run, so the run
# measures retries, not only a cooldown that takes it out from the warm-up on. Only flaky-c16
# fails, so the other scenarios never use them.
ROUTER_SETTINGS = {"num_retries": 2, "allowed_fails": 3, "cooldown_time": 1}


def gateway_config(upstream: str, features: Features | None = None) -> str:
    """One LiteLLM-format config.yaml that Seance and the LiteLLM proxy both load unchanged;
    with `features`, issue 10's features on (Features)."""
    entries = [
        ("bench-openai", "openai/gpt-4o-mini", f"{upstream}/v1", "sk-fake"),
        ("bench-stream", "openai/gpt-4o-mini", f"{upstream}/stream/v1", "sk-fake"),
        ("bench-slow", "openai/gpt-4o-mini", f"{upstream}/slow/v1", "sk-fake"),
        ("bench-embed", "openai/text-embedding-3-small", f"{upstream}/v1", "sk-fake"),
        # Both gateways append /v1/messages to an Anthropic api_base.
        ("bench-anthropic", "anthropic/claude-haiku-4-5", f"{upstream}/anthropic", "sk-ant-fake"),
        ("bench-anthropic-stream", "anthropic/claude-haiku-4-5", f"{upstream}/anthropic-stream", "sk-ant-fake"),
        ("bench-flaky", "openai/gpt-4o-mini", f"{upstream}/v1", "sk-fake"),
        ("bench-flaky", "openai/gpt-4o-mini", f"{upstream}/flaky/v1", "sk-fake"),
    ]
    lines = ["model_list:"]
    for name, model, api_base, api_key in entries:
        lines += [
            f"  - model_name: {name}",
            "    litellm_params:",
            f"      model: {model}",
            f"      api_base: {api_base}",
            f"      api_key: {api_key}",
        ]
        if features is not None:
            lines += [f"      {limit}: {value}" for limit, value in DEPLOYMENT_LIMITS.items()]
    router = {**ROUTER_SETTINGS, **({"enable_pre_call_checks": "true"} if features is not None else {})}
    lines += ["router_settings:", *(f"  {key}: {value}" for key, value in router.items())]
    if features is not None:
        lines += _features_sections(features)
    return "\n".join(lines) + "\n"
