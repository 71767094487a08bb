"""The gateway's `config.yaml` (LiteLLM's format) for one environment.

Secrets never appear in it: the master key and provider keys are referenced as `os.environ/NAME`
and reach the pod through `envFrom` on the Secret.
"""

from __future__ import annotations

from typing import Any

from seance.deploy.settings import Model, Settings

VALKEY_SERVICE = "valkey"
VALKEY_PORT = 6379


def valkey_url(settings: Settings) -> str | None:
    """The REDIS_URL the gateway gets from the manifest (None: external URL from secrets, or none)."""
    if settings.valkey.mode != "in-cluster":
        return None
    return f"redis://{VALKEY_SERVICE}:{VALKEY_PORT}/0"


def gateway_config(settings: Settings) -> dict[str, Any]:
    gateway = settings.gateway
    litellm_settings: dict[str, Any] = {
        "num_retries": gateway.num_retries,
        "request_timeout": gateway.request_timeout,
        "drop_params": gateway.drop_params,
    }
    router_settings: dict[str, Any] = {"routing_strategy": gateway.routing_strategy}
    shared_state = settings.valkey.mode != "none"
    if gateway.cache:
        # With no shared store each process keeps its own cache, which is still correct.
        litellm_settings["cache"] = True
        litellm_settings["cache_params"] = {"type": "redis" if shared_state else "local"}
    if settings.valkey.mode == "in-cluster":
        router_settings["redis_host"] = VALKEY_SERVICE
        router_settings["redis_port"] = VALKEY_PORT
    return {
        "model_list": [_model_entry(model) for model in gateway.models],
        "litellm_settings": litellm_settings,
        "router_settings": router_settings,
        "general_settings": {"master_key": "os.environ/LITELLM_MASTER_KEY"},
    }


def _model_entry(model: Model) -> dict[str, Any]:
    params: dict[str, Any] = {"model": model.model}
    for name in ("api_base", "api_version", "rpm", "tpm", "weight", "timeout"):
        value = getattr(model, name)
        if value is not None:
            params[name] = value
    return {"model_name": model.model_name, "litellm_params": params}
