"""The gateway's `config.yaml` (LiteLLM's format) for one environment: generated from the settings,
or the operator's own file (`gateway.config_file`), validated the way the gateway validates it at start.

Secrets never appear in a generated one: the master key and provider keys are referenced as
`os.environ/NAME` and reach the pod through `envFrom` on the Secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seance.deploy.errors import DeployError
from seance.deploy.settings import Model, Settings
from seance.litellm_config import ConfigError, read_config

_DEPLOYMENT_PARAMS = re.compile(r"model_list\[\d+\]\.litellm_params\.")
VALKEY_SERVICE = "valkey"
VALKEY_PORT = 6379


def valkey_url(settings: Settings) -> str | None:
    """The REDIS_URL the gateway gets from the manifest (None: external URL from secrets, or none)."""
    if settings.valkey.mode != "in-cluster":
        return None
    return f"redis://{VALKEY_SERVICE}:{VALKEY_PORT}/0"


def pod_env(settings: Settings) -> dict[str, str]:
    """The variables the Deployment sets itself, besides the Secret's keys (envFrom)."""
    env = {"PYTHONDONTWRITEBYTECODE": "1"}
    url = valkey_url(settings)
    if url:
        env["REDIS_URL"] = url
    return env


@dataclass(frozen=True)
class ConfigFile:
    """An operator's config.yaml, as text for the ConfigMap, checked against the pod's environment."""

    text: str
    sets_master_key: bool  # general_settings.master_key: then LITELLM_MASTER_KEY is not required
    warnings: tuple[str, ...] = ()  # what the gateway's start would warn about (keys it ignores)
    sets_database: bool = False  # general_settings.database_url: keys and spend in that database


def load_config_file(settings: Settings, secrets: Mapping[str, str], secrets_source: str) -> ConfigFile:
    """Read `gateway.config_file` and validate it with the gateway's own reader, resolving each
    `os.environ/NAME` against what the pod's environment will hold: the Secret's keys, the variables
    the Deployment sets, and the file's environment_variables. So a typo or a reference to a secret
    that is not in the file fails here, not in a crash-looping pod."""
    path = Path(str(settings.gateway.config_file))
    hint = (
        f" in the pod, whose environment is the keys of {secrets_source} (add it there,"
        " `seance secrets edit`) and the config's environment_variables"
    )
    try:
        text = path.read_text(encoding="utf-8")
        loaded = read_config(path, {**secrets, **pod_env(settings)})
    except OSError as exc:
        raise DeployError(f"{path}: cannot read the gateway config: {exc.strerror}") from None
    except ConfigError as exc:
        message = str(exc)
        raise DeployError(message + (hint if message.endswith(" is not set") else "")) from None
    # The reader leaves a deployment's unset references for the gateway to refuse when it serves
    # that deployment, at start. Which providers it serves is the gateway's business; here any such
    # reference is an error: it names a secret the file does not have.
    for where, name in loaded.unresolved.items():
        if _DEPLOYMENT_PARAMS.match(where):
            raise DeployError(f"{path}: {where}: environment variable {name} is not set{hint}")
    general = loaded.file.general_settings
    return ConfigFile(text, bool(general.master_key), tuple(loaded.warnings), bool(general.database_url))


def gateway_config(settings: Settings) -> dict[str, Any]:
    gateway = settings.gateway
    litellm_settings: dict[str, Any] = {
        "num_retries": gateway.num_retries,
        "request_timeout": gateway.request_timeout,
        "drop_params": gateway.drop_params,
    }
    router_settings: dict[str, Any] = {"routing_strategy": gateway.routing_strategy}
    shared_state = settings.valkey.mode != "none"
    if gateway.metrics:
        litellm_settings["callbacks"] = ["prometheus"]
        if not gateway.metrics_require_auth:
            litellm_settings["require_auth_for_metrics_endpoint"] = False
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
