"""`litellm_settings.cache` / `cache_params` into the cache hook: what turns it on, which store, what
is refused at start and what is only warned of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from seance.gateway.app import Gateway
from seance.gateway.config import ConfigError, load_settings
from seance.gateway.pipeline import hooks
from seance.gateway.pipeline.cache import DEFAULT_MAX_BYTES, DEFAULT_TTL, Cache, caching_groups, read_config
from seance.gateway.pipeline.cache_stores import LocalStore, RedisStore

MODELS = [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-x"}}]


def settings(tmp_path: Path, litellm: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({"model_list": MODELS, "litellm_settings": litellm}))
    return load_settings(path, {"LITELLM_MASTER_KEY": "sk-m", **(env or {})}, announce=False)


def cache_hook(tmp_path: Path, litellm: dict[str, Any], env: dict[str, str] | None = None) -> Cache | None:
    loaded = settings(tmp_path, litellm, env)
    found = [h for h in hooks.build(hooks.Features(loaded.master_key, settings=loaded)) if isinstance(h, Cache)]
    return found[0] if found else None


def test_off_unless_cache_is_true(tmp_path: Path) -> None:
    assert cache_hook(tmp_path, {}) is None
    assert cache_hook(tmp_path, {"cache": False, "cache_params": {"type": "local"}}) is None


def test_local_by_default_without_a_redis(tmp_path: Path) -> None:
    hook = cache_hook(tmp_path, {"cache": True})
    assert hook is not None and isinstance(hook.store, LocalStore)
    assert hook.config.ttl == DEFAULT_TTL and hook.store.max_bytes == DEFAULT_MAX_BYTES
    assert hook.config.endpoints == {"chat", "completion", "embedding", "messages"}


def test_redis_when_one_is_configured(tmp_path: Path) -> None:
    hook = cache_hook(tmp_path, {"cache": True}, {"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert hook is not None and isinstance(hook.store, RedisStore)
    params = {"type": "redis", "host": "127.0.0.1", "port": 6379, "ttl": 30, "namespace": "app"}
    hook = cache_hook(tmp_path, {"cache": True, "cache_params": params})
    assert hook is not None and isinstance(hook.store, RedisStore)
    assert (hook.config.ttl, hook.config.namespace) == (30.0, "app")
    assert "127.0.0.1:6379" in hook.store.redis.where


def test_settings_that_narrow_it(tmp_path: Path) -> None:
    params = {"type": "local", "supported_call_types": ["aembedding", "atranscription"], "max_size_bytes": 4096}
    loaded = settings(tmp_path, {"cache": True, "cache_params": {**params, "mode": "default_off"}})
    config, warnings = read_config(loaded)
    assert config is not None and config.endpoints == {"embedding"} and config.max_bytes == 4096
    assert config.default_off and warnings == []


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"type": "redis"}, "cache_params.type is redis, but no Redis is configured \\(host, url, or REDIS_URL\\)$"),
        (
            {"type": "redis", "redis_startup_nodes": [{"host": "10.0.0.1", "port": 7001}]},
            "no Redis is configured .*; redis_startup_nodes \\(a Redis Cluster or Sentinel\\) is not supported: "
            "Seance needs one standalone Redis or Valkey",
        ),
        ({"ttl": -5}, "cache_params.ttl: must be a positive number"),
        ({"ttl": "soon"}, "cache_params.ttl: must be a positive number"),
        ({"supported_call_types": "acompletion"}, "cache_params.supported_call_types: must be a list"),
        ({"max_size_bytes": 0}, "cache_params.max_size_bytes: must be a positive number"),
        ({"mode": "sometimes"}, "cache_params.mode: must be default_on or default_off"),
        ({"type": "locl"}, "cache_params.type: 'locl' is not a cache type .*; did you mean 'local'\\?"),
        ({"type": "memory"}, "cache_params.type: 'memory' is not a cache type \\(LiteLLM's: local, redis, "),
    ],
)
def test_wrong_values_stop_the_start(tmp_path: Path, params: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        cache_hook(tmp_path, {"cache": True, "cache_params": params})


def test_what_seance_does_not_have_is_warned_of(tmp_path: Path) -> None:
    loaded = settings(tmp_path, {"cache": True, "cache_params": {"type": "s3", "s3_bucket_name": "b"}})
    config, warnings = read_config(loaded)
    assert config is None
    assert any("s3_bucket_name is not supported" in w for w in warnings)
    assert any("type 's3' is not supported" in w and "the cache is off" in w for w in warnings)
    loaded = settings(tmp_path, {"cache": True, "cache_params": {"supported_call_types": ["acompletions"]}})
    _, warnings = read_config(loaded)
    assert warnings == [f"{loaded.source}: litellm_settings.cache_params.supported_call_types: "
                        "'acompletions' is not a call type Seance caches; ignored; "
                        "did you mean 'acompletion'?"]  # fmt: skip
    loaded = settings(tmp_path, {"cache": True, "cache_params": {"ttll": 5, "s3_region_name": "x"}})
    _, warnings = read_config(loaded)
    assert warnings == [
        f"{loaded.source}: litellm_settings.cache_params.ttll is not supported by Seance; ignored; did you mean 'ttl'?",
        f"{loaded.source}: litellm_settings.cache_params.s3_region_name is not supported by Seance; ignored",
    ]


def test_caching_groups_are_one_group_each_and_name_model_groups(tmp_path: Path, caplog: Any) -> None:
    path = tmp_path / "config.yaml"
    models = [*MODELS, {"model_name": "gpt-azure", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-x"}}]
    config: dict[str, Any] = {"model_list": models, "litellm_settings": {"cache": True}}
    config["router_settings"] = {"caching_groups": [["gpt", "gpt-azure"], ["gpt", "other"]]}
    path.write_bytes(orjson.dumps(config))
    with pytest.raises(ConfigError, match=r"caching_groups.*'gpt' is in groups 0 and 1"):
        load_settings(path, {"LITELLM_MASTER_KEY": "sk-m"})
    config["router_settings"] = {"caching_groups": [["gpt", "gpt-azur"]]}
    path.write_bytes(orjson.dumps(config))
    loaded = load_settings(path, {"LITELLM_MASTER_KEY": "sk-m"})
    shared, warnings = caching_groups(loaded, {"gpt", "gpt-azure"})
    assert shared == {"gpt": ["gpt", "gpt-azur"], "gpt-azur": ["gpt", "gpt-azur"]}
    assert warnings == [
        f"{path}: router_settings.caching_groups[0]: 'gpt-azur' is not a model group; did you mean 'gpt-azure'?"
    ]
    with caplog.at_level("WARNING", logger="seance.gateway"):
        Gateway(loaded, hooks.build(hooks.Features(loaded.master_key, settings=loaded)))
    assert "did you mean 'gpt-azure'?" in caplog.text
