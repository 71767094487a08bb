"""LiteLLM's config.yaml: its schema, and reading it against an environment.

Shared by the gateway (which serves it) and `seance synth` (which validates it before deploying it),
so a config that synth accepts is one the gateway starts with. Nothing here imports the gateway's
runtime. Every problem is one ConfigError line naming the file, the key path and the reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

ENV_PREFIX = "os.environ/"


class ConfigError(Exception):
    """A config that cannot be served; the message is one line for the operator."""


class LiteLLMParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    api_key: str | None = None
    api_base: str | None = None
    api_version: str | None = None
    rpm: int | None = Field(default=None, ge=0)
    tpm: int | None = Field(default=None, ge=0)
    weight: float = Field(default=1.0, gt=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    drop_params: bool | None = None


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="allow")

    model_name: str
    litellm_params: LiteLLMParams
    model_info: dict[str, Any] = Field(default_factory=dict)


class LiteLLMSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    num_retries: int | None = Field(default=None, ge=0)
    request_timeout: float | None = Field(default=None, gt=0)
    drop_params: bool = False
    fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    context_window_fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    cache: bool = False
    cache_params: dict[str, Any] = Field(default_factory=dict)
    callbacks: list[str] | str | None = None


class RouterSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    routing_strategy: str = "simple-shuffle"
    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    redis_host: str | None = None
    redis_port: int | None = None
    redis_password: str | None = None


class GeneralSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    master_key: str | None = None
    database_url: str | None = None


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    model_list: list[ModelEntry] = Field(default_factory=list)
    litellm_settings: LiteLLMSettings = Field(default_factory=LiteLLMSettings)
    router_settings: RouterSettings = Field(default_factory=RouterSettings)
    general_settings: GeneralSettings = Field(default_factory=GeneralSettings)
    environment_variables: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config file and the environment its `os.environ/` references resolved against
    (the process environment plus the file's own environment_variables)."""

    file: ConfigFile
    env: Mapping[str, str] = field(repr=False)
    source: str  # the config file's path


def read_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate `path` against `environ` (default: the process environment)."""
    env = dict(os.environ if environ is None else environ)
    source = str(path)
    raw = _read_yaml(Path(path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, found {_kind(raw)}")
    # environment_variables come first: the rest of the file may refer to them.
    variables = raw.get("environment_variables") or {}
    if not isinstance(variables, dict):
        raise ConfigError(f"{source}: environment_variables: must be a mapping of NAME: value")
    for name, value in variables.items():
        resolved = _resolve(value, env, source, f"environment_variables.{name}")
        env[str(name)] = "" if resolved is None else str(resolved)
    data = _resolve(raw, env, source, "")
    try:
        file = ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_describe(exc)}") from None
    return LoadedConfig(file, env, source)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def _resolve(value: Any, env: Mapping[str, str], source: str, where: str) -> Any:
    """Replace every `os.environ/NAME` string in a YAML tree by the variable's value."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX) :]
        if name not in env:
            raise ConfigError(f"{source}: {where}: environment variable {name} is not set")
        return env[name]
    if isinstance(value, dict):
        return {k: _resolve(v, env, source, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, env, source, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{path}: {first['msg'].lower()}{suffix}"


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number"}.get(type(value), "a scalar")
