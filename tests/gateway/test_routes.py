"""The route table: LiteLLM's paths with and without /v1, trailing slashes, model ids with slashes."""

from __future__ import annotations

import pytest

from seance.gateway import routes


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/chat/completions", routes.CHAT), ("/chat/completions", routes.CHAT),
        ("/v1/chat/completions/", routes.CHAT),
        ("/v1/completions", routes.COMPLETION), ("/embeddings", routes.EMBEDDING), ("/v1/models", routes.MODELS),
        ("/v1/messages", routes.MESSAGES), ("/anthropic/v1/messages", routes.MESSAGES),
        ("/v1/messages/count_tokens", routes.COUNT_TOKENS), ("/health/liveliness", routes.ALIVE),
        ("/health/liveness", routes.ALIVE), ("/health/readiness", routes.READY), ("/health", routes.HEALTH),
        ("/v1/models/openai/gpt-4o", routes.MODEL), ("/models/gpt", routes.MODEL), ("/v2/chat", routes.NOT_FOUND),
        ("/", routes.NOT_FOUND),
        ("/metrics", routes.METRICS),
        ("/metrics/", routes.METRICS),
    ],
)  # fmt: skip
def test_match(path: str, route: routes.Route) -> None:
    assert routes.match(path) is route


def test_model_id_keeps_slashes() -> None:
    assert routes.model_id("/v1/models/openai/gpt-4o") == "openai/gpt-4o"
    assert routes.model_id("/models/gpt/") == "gpt"


def test_only_api_routes_run_the_hooks_and_only_probes_skip_auth() -> None:
    # /metrics checks its own keys (the master key or the metrics key; or none when opened)
    for route in set(routes.TABLE.values()):
        assert route.pipeline == (route not in (routes.ALIVE, routes.READY, routes.METRICS))
        assert route.auth == (route not in (routes.ALIVE, routes.READY, routes.METRICS))
