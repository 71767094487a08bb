"""What the gateway runs with: the config file (read by `seance.litellm_config`) and the environment.

The environment is read here and nowhere else in the gateway: `os.environ/NAME` references, provider
keys and base URLs are resolved into plain values that the rest of the code receives explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seance.litellm_config import ConfigError, ConfigFile, ModelEntry, read_config

__all__ = ["ConfigError", "ConfigFile", "ModelEntry", "Settings", "load_settings"]


@dataclass(frozen=True)
class Settings:
    """The validated file plus the environment it resolved against."""

    file: ConfigFile
    env: Mapping[str, str] = field(repr=False)
    source: str  # the config file's path, or "(no config)"
    master_key: str | None = field(repr=False)
    no_config: bool = False


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read `path` (None: no-config mode) against `environ` (default: the process environment)."""
    if path is None:
        env = dict(os.environ if environ is None else environ)
        file = ConfigFile()
        return Settings(file, env, "(no config)", _master_key(file, env), no_config=True)
    loaded = read_config(path, environ)
    return Settings(loaded.file, loaded.env, loaded.source, _master_key(loaded.file, loaded.env))


def _master_key(file: ConfigFile, env: Mapping[str, str]) -> str | None:
    return file.general_settings.master_key or env.get("LITELLM_MASTER_KEY") or None
