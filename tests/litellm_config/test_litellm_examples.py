"""LiteLLM's own example configs load as they are, with the warning listing what Seance ignores."""

from __future__ import annotations

from pathlib import Path

import pytest

from seance.litellm_config import read_config

FIXTURES = Path(__file__).parent.parent / "fixtures" / "litellm_configs"
ENV = {name: "set" for name in ("AZURE_API_KEY", "OPENAI_API_KEY", "AZURE_API_KEY_EU", "AZURE_API_KEY_CA")}


def ignored(name: str) -> list[str]:
    return [item.path for item in read_config(FIXTURES / name, ENV).ignored]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.yaml")))
def test_every_example_loads(name: str) -> None:
    loaded = read_config(FIXTURES / name, ENV)
    assert loaded.file.model_list
    assert all(line.count("\n") == 0 for line in loaded.warnings)


def test_litellm_proxy_server_config() -> None:
    # LiteLLM's CI config: REDIS_*, LANGFUSE_* and AZURE_API_BASE are unset here, and only read by
    # settings Seance ignores or treats as optional (the shared Redis), so they are no error
    loaded = read_config(FIXTURES / "proxy_server_config.yaml", ENV)
    paths = [item.path for item in loaded.ignored]
    for path in (
        "finetune_settings",
        "files_settings",
        "litellm_settings.default_team_settings",
        "general_settings.pass_through_endpoints",
        "model_list[13].litellm_params.mock_timeout",
    ):
        assert path in paths
    assert "router_settings.redis_host" not in paths  # supported: the shared Redis
    assert "general_settings.store_model_in_db" not in paths  # supported: /model/new
    assert "router_settings.redis_host" in loaded.unresolved
    assert (loaded.resolved.num_retries, loaded.resolved.timeout, loaded.resolved.drop_params) == (5, 600, True)


def test_docs_quick_start() -> None:
    assert ignored("docs_quick_start.yaml") == [
        "litellm_settings.success_callback",
        "general_settings.alerting",
        "model_list[3].litellm_params.aws_region_name",
    ]


def test_docs_model_params() -> None:
    loaded = read_config(FIXTURES / "docs_model_params.yaml", ENV)
    assert [item.path for item in loaded.ignored] == [
        "model_list[0].litellm_params.azure_ad_token",
        "model_list[2].litellm_params.extra_headers",
        "model_list[2].litellm_params.organization",
    ]
    values = loaded.resolved.deployment(loaded.file.model_list[0].litellm_params)
    assert values.request_defaults == {"seed": 12, "max_tokens": 20}


def test_docs_load_balancing_router_settings_win() -> None:
    loaded = read_config(FIXTURES / "docs_load_balancing.yaml", ENV)
    assert (loaded.resolved.num_retries, loaded.resolved.timeout) == (2, 30)
    assert loaded.resolved.fallbacks_for("zephyr-beta") == ("gpt-4o",)
    paths = [item.path for item in loaded.ignored]
    assert "litellm_settings.num_retries" in paths and "litellm_settings.request_timeout" in paths
    assert "overridden by router_settings.num_retries" in loaded.warnings[0]


def test_docs_production() -> None:
    assert ignored("docs_production.yaml") == [
        "litellm_settings.json_logs",
        "general_settings.alerting",
        "general_settings.database_connection_pool_limit",
        "general_settings.allow_requests_on_db_unavailable",
    ]
