"""/health/readiness: LiteLLM's fields, said from what the gateway knows (no probe of its own)."""

from __future__ import annotations

from pathlib import Path

from tests.gateway.asgi_client import deployment, make_app, request

from seance.gateway.pipeline.cache import Cache, CacheConfig
from seance.gateway.pipeline.cache_stores import LocalStore
from seance.gateway.upstream.mock import MockResponse

CONFIG = {"model_list": [deployment("gpt", "openai/gpt-4o")]}


def test_without_a_database_or_cache(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, CONFIG, lambda call: MockResponse(200, b"{}"))
    answer = request(app, "GET", "/health/readiness", headers={"authorization": ""})
    assert answer.status == 200 and answer.json() == {"status": "healthy", "db": "Not connected", "cache": None}


def test_with_the_cache_its_type(tmp_path: Path) -> None:
    cache = Cache(CacheConfig("local"), LocalStore(1 << 20))
    app, _ = make_app(tmp_path, CONFIG, lambda call: MockResponse(200, b"{}"), [cache])
    assert request(app, "GET", "/health/readiness").json()["cache"] == "local"
    app.health.draining = True
    assert request(app, "GET", "/health/readiness").status == 503
