"""The config files the all-features targets load, read as the gateway reads them at start."""

from pathlib import Path

import pytest
import yaml

from scenarios import (
    CACHE_SCENARIOS,
    DEPLOYMENT_LIMITS,
    SCENARIOS,
    Features,
    as_miss,
    gateway_config,
)
from seance.gateway.config import load_settings
from seance.gateway.shared_state import find_redis

UPSTREAM = "http://127.0.0.1:18100"


def _settings(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return load_settings(path, {"LITELLM_MASTER_KEY": "sk-bench"}, announce=False)


@pytest.mark.parametrize("cache", ["local", "redis"])
def test_the_features_config_turns_on_the_cache_metrics_and_deployment_limits(tmp_path: Path, cache: str) -> None:
    settings = _settings(tmp_path, gateway_config(UPSTREAM, Features(cache, "seance-all-bench-1")))
    section = settings.file.litellm_settings
    assert section.cache is True
    assert section.cache_params["type"] == cache
    assert settings.metrics is True  # callbacks: ["prometheus"]
    assert settings.file.router_settings.enable_pre_call_checks is True
    for entry in settings.file.model_list:
        assert (entry.litellm_params.rpm, entry.litellm_params.tpm) == (
            DEPLOYMENT_LIMITS["rpm"],
            DEPLOYMENT_LIMITS["tpm"],
        )
    # The rate limits go where the cache goes: Redis (from cache_params) or the process.
    redis = find_redis(settings)
    if cache == "redis":
        assert section.cache_params["namespace"] == "seance-all-bench-1"
        assert redis is not None and redis.url == "redis://127.0.0.1:6379/0"
    else:
        assert redis is None
    assert not settings.ignored  # Seance acts on every setting of the file


def test_the_plain_config_has_none_of_the_features(tmp_path: Path) -> None:
    settings = _settings(tmp_path, gateway_config(UPSTREAM))
    assert settings.file.litellm_settings.cache is False
    assert settings.metrics is False
    assert settings.file.router_settings.enable_pre_call_checks is False
    assert all(entry.litellm_params.rpm is None for entry in settings.file.model_list)
    assert find_redis(settings) is None


def test_litellm_reads_the_same_sections() -> None:
    """LiteLLM reads the file with a YAML loader: every section once, with the values it acts on."""
    config = yaml.safe_load(gateway_config(UPSTREAM, Features("redis", "litellm-all-bench-1")))
    assert config["litellm_settings"]["callbacks"] == ["prometheus"]
    assert config["litellm_settings"]["cache_params"] == {
        "type": "redis", "host": "127.0.0.1", "port": 6379, "namespace": "litellm-all-bench-1", "ttl": 30,
    }  # fmt: skip
    assert set(config) == {"model_list", "router_settings", "litellm_settings"}
    assert config["router_settings"]["enable_pre_call_checks"] is True
    assert config["router_settings"]["num_retries"] == 2  # the plain config's settings are kept


def test_an_all_features_target_runs_every_scenario_but_the_hit_as_a_miss() -> None:
    for scenario in [*SCENARIOS, *CACHE_SCENARIOS]:
        ran = as_miss(scenario)
        assert ran.vary is (scenario.key != "cache-hit-c64"), scenario.key
        assert (ran.key, ran.connections, ran.model) == (scenario.key, scenario.connections, scenario.model)
