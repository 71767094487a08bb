"""What the gateway runs with: the config file (read by `seance.litellm_config`) and the environment.

The environment is read here and nowhere else in the gateway: `os.environ/NAME` references, provider
keys and base URLs are resolved into plain values that the rest of the code receives explicitly.
LiteLLM's layering of litellm_settings / router_settings / litellm_params is `settings.resolved`
(see `seance.litellm_config.resolve`): routing code asks it, and never reads those sections itself.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seance.gateway import trace_export
from seance.gateway.trace_export import TraceExport
from seance.litellm_config import (
    ConfigError,
    ConfigFile,
    Ignored,
    LoadedConfig,
    ModelEntry,
    Resolved,
    read_config,
    resolve,
)

__all__ = [
    "ConfigError",
    "ConfigFile",
    "ModelEntry",
    "Resolved",
    "Settings",
    "announce",
    "load_settings",
    "require_master_key",
]

log = logging.getLogger("seance.gateway")
MODELS_POLL = 5.0


@dataclass(frozen=True)
class Settings:
    """The validated file plus the environment it resolved against."""

    file: ConfigFile
    env: Mapping[str, str] = field(repr=False)
    source: str  # the config file's path, or "(no config)"
    master_key: str | None = field(repr=False)
    no_config: bool = False
    resolved: Resolved = field(default_factory=Resolved)
    ignored: tuple[Ignored, ...] = ()  # keys set in the file that Seance does not act on (yet)
    env_refs: Mapping[str, str] = field(default_factory=dict)  # key path -> NAME of `os.environ/NAME`
    unresolved: Mapping[str, str] = field(default_factory=dict)  # the same, for unset variables
    announce: bool = True  # log the warnings (the start does; `seance check` prints them instead)
    warnings: tuple[str, ...] = ()
    # Prometheus: on with LiteLLM's `callbacks: [prometheus]` (or --metrics); /metrics wants the
    # master key or `metrics_key` unless require_auth_for_metrics_endpoint is false
    metrics: bool = False
    metrics_auth: bool = True
    metrics_key: str | None = field(default=None, repr=False)
    # OpenTelemetry: LiteLLM's `callbacks: [otel]`, exported where the OTEL_* variables say
    traces: TraceExport | None = None
    # seconds between each worker's looks at the models stored by /model/new (SEANCE_MODELS_POLL):
    # how soon the other workers and replicas serve a change
    models_poll: float = MODELS_POLL

    def require_env(self, where: str) -> None:
        """Raise for the first `os.environ/` reference under `where` (a key path) that is unset:
        the deployment there is served, so its settings must all be known."""
        for path, name in self.unresolved.items():
            if path.startswith(where + "."):
                raise ConfigError(f"{self.source}: {path}: environment variable {name} is not set")


def load_settings(
    path: str | Path | None, environ: Mapping[str, str] | None = None, *, announce: bool = True
) -> Settings:
    """Read `path` (None: no-config mode) against `environ` (default: the process environment).
    `announce`: log the warnings (one WARNING line) as the start does."""
    if path is None:
        env = dict(os.environ if environ is None else environ)
        file = ConfigFile()
        settings = Settings(
            file, env, "(no config)", _master_key(file, env), no_config=True, resolved=resolve(file), announce=announce
        )
    else:
        loaded: LoadedConfig = read_config(path, environ)
        settings = Settings(
            loaded.file,
            loaded.env,
            loaded.source,
            _master_key(loaded.file, loaded.env),
            resolved=loaded.resolved,
            ignored=loaded.ignored,
            env_refs=loaded.env_refs,
            unresolved=loaded.unresolved,
            announce=announce,
            warnings=tuple(loaded.warnings),
        )
    settings = dataclasses.replace(_with_metrics(settings), models_poll=_models_poll(settings.env))
    if announce:
        _log(settings.warnings)
    return settings


def require_master_key(settings: Settings, allow_no_auth: bool) -> None:
    """The gateway does not serve without a master key, unless told to (local experiments)."""
    if settings.master_key is None and not allow_no_auth:
        raise ConfigError(
            "no master key: set LITELLM_MASTER_KEY or general_settings.master_key "
            "(or pass --allow-no-auth to serve without authentication)"
        )


def announce(settings: Settings, warnings: Iterable[str]) -> None:
    """Log warnings found after loading (by the deployment table), if the settings say so."""
    if settings.announce:
        _log(warnings)


def _log(warnings: Iterable[str]) -> None:
    for warning in warnings:
        log.warning("%s", warning)


def callbacks(file: ConfigFile) -> list[str]:
    """The callbacks litellm_settings names (callbacks, success_callback, failure_callback)."""
    section = file.litellm_settings
    extra = section.model_extra or {}
    names: list[str] = []
    for value in (section.callbacks, extra.get("success_callback"), extra.get("failure_callback")):
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, list):
            names.extend(str(v) for v in value)
    return names


def _with_metrics(settings: Settings) -> Settings:
    extra = settings.file.litellm_settings.model_extra or {}
    named = callbacks(settings.file)
    warnings = settings.warnings
    traces = None
    if "otel" in named:
        traces, found = trace_export.read(settings.env)
        where = f"{settings.source}: litellm_settings.callbacks otel"
        warnings += tuple(f"{where}: {warning}" for warning in found)
        if traces is None:
            unsent = "no traces are sent without OTEL_EXPORTER_OTLP_ENDPOINT (the OTLP/HTTP collector's URL)"
            warnings += (f"{where}: {unsent}",)
    return dataclasses.replace(
        settings,
        warnings=warnings,
        traces=traces,
        metrics="prometheus" in named,
        metrics_auth=extra.get("require_auth_for_metrics_endpoint") is not False,
        metrics_key=settings.env.get("SEANCE_METRICS_KEY") or None,
    )


def _models_poll(env: Mapping[str, str]) -> float:
    text = env.get("SEANCE_MODELS_POLL")
    if not text:
        return MODELS_POLL
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.05 <= value <= 3600:
        raise ConfigError(f"SEANCE_MODELS_POLL: seconds between 0.05 and 3600 expected, not {text!r}")
    return value


def _master_key(file: ConfigFile, env: Mapping[str, str]) -> str | None:
    return file.general_settings.master_key or env.get("LITELLM_MASTER_KEY") or None
