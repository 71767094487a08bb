"""LiteLLM's config.yaml: its schema, and reading it against an environment.

Shared by the gateway (which serves it) and `seance synth` (which validates it before deploying it),
so a config that synth accepts is one the gateway starts with. Nothing here imports the gateway's
runtime. Every problem is one ConfigError line naming the file, the key path and the reason.

    known_keys  every key LiteLLM reads, and whether Seance supports, ignores or refuses it
    keys        a file's keys against those tables: unknown keys ("did you mean"), refused, ignored
    schema      the typed shape of the keys Seance uses
    resolve     LiteLLM's layering of litellm_settings / router_settings / litellm_params, done once
    reader      read_config: YAML, keys, `os.environ/` references, types; read_model_entry: one entry
                (the models added at run time)
"""

from seance.litellm_config.errors import ConfigError
from seance.litellm_config.keys import Ignored
from seance.litellm_config.known_keys import LITELLM_PROVIDERS
from seance.litellm_config.reader import ENV_PREFIX, LoadedConfig, read_config, read_model_entry
from seance.litellm_config.resolve import DEFAULT_RETRIES, DEFAULT_TIMEOUT, DeploymentValues, Resolved, resolve
from seance.litellm_config.schema import (
    ConfigFile,
    GeneralSettings,
    LiteLLMParams,
    LiteLLMSettings,
    ModelEntry,
    RouterSettings,
)

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "ENV_PREFIX",
    "LITELLM_PROVIDERS",
    "ConfigError",
    "ConfigFile",
    "DeploymentValues",
    "GeneralSettings",
    "Ignored",
    "LiteLLMParams",
    "LiteLLMSettings",
    "LoadedConfig",
    "ModelEntry",
    "Resolved",
    "RouterSettings",
    "read_config",
    "read_model_entry",
    "resolve",
]
