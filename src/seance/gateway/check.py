"""`seance check`: validate a config offline, with the code the start runs, and show what it serves.

Builds the settings and the deployment table exactly as `seance gateway` does, without serving:
a config `check` accepts is one the gateway starts with. Keys are never printed, only where each
comes from (a variable's name, or "config").
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from seance.gateway.admin import key_policy
from seance.gateway.config import ConfigError, Settings, load_settings, require_master_key
from seance.gateway.pipeline.cache import caching_groups
from seance.gateway.pipeline.cache import read_config as read_cache_config
from seance.gateway.providers.base import Adapter
from seance.gateway.routing.deployments import Deployment, Deployments
from seance.litellm_config import LiteLLMParams


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="CONFIG_FILE_PATH",
    help="LiteLLM-format config.yaml (default: $CONFIG_FILE_PATH; none: no-config mode).",
)  # fmt: skip
@click.option(
    "--secrets", "secrets_path", type=click.Path(dir_okay=False, path_type=Path),
    help="SOPS-encrypted secrets file whose service section becomes the environment, as for the gateway.",
)  # fmt: skip
@click.option("--service", default="litellm", show_default=True, help="Section of --secrets to use.")
@click.option("--allow-no-auth", is_flag=True, help="Accept a setup without a master key, as the gateway would.")
def check(config_path: Path | None, secrets_path: Path | None, service: str, allow_no_auth: bool) -> None:
    """Validate the gateway's config offline and print the models it would serve."""
    from seance.gateway.cli import _secrets_env

    environ = dict(os.environ)
    secrets: dict[str, str] = {}
    if secrets_path is not None:
        secrets = _secrets_env(secrets_path, service)
        environ.update(secrets)
    try:
        settings = load_settings(config_path, environ, announce=False)
        require_master_key(settings, allow_no_auth)
        deployments = Deployments(settings)
        cache, cache_warnings = read_cache_config(settings)
        if cache is not None:  # (the gateway reads these as it builds its router: Gateway._use)
            served = {*deployments.model_names(), *deployments.aliases}
            cache_warnings += caching_groups(settings, served)[1]
        key_policy.read(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    origin = f"secrets file {secrets_path}" if secrets else ""
    click.echo(report(settings, deployments, origin=origin, more_warnings=cache_warnings), nl=False)


def report(settings: Settings, deployments: Deployments, origin: str = "", more_warnings: Sequence[str] = ()) -> str:
    """What `seance check` prints: models per group, where each key comes from, and the warnings.
    `origin`: where the environment came from, when not only the process (a secrets file)."""
    lines = [f"config: {settings.source}"]
    if origin:
        lines.append(f"environment: the process's, and the {origin}")
    lines += [f"master key: {_master_key_source(settings)}", "", "models:"]
    for name, group in deployments.groups.items():
        lines.append(f"  {name}")
        lines.extend(f"    {_describe(settings, d)}" for d in group)
    for wildcard in deployments.wildcards:
        if wildcard.name in deployments.unsupported:
            continue
        lines.append(f"  {wildcard.name}  (wildcard)")
        lines.append(f"    {_describe_wildcard(settings, deployments, wildcard.entry.litellm_params, wildcard.where)}")
    if not deployments.groups and not deployments.wildcards:
        lines.append("  (none)")
    lines += ["", "routing:", f"  {_routing(settings)}"]
    fallbacks = [(name, deployments.fallbacks_for(name)) for name in deployments.groups]
    lines.extend(f"  fallbacks: {name} -> {', '.join(targets)}" for name, targets in fallbacks if targets)
    warnings = [f"{settings.source}: {item}: ignored" for item in settings.ignored]
    warnings += deployments.warnings
    warnings += more_warnings
    warnings += [
        f"{d.where} ({d.model_name}): {d.missing_key}" for g in deployments.groups.values() for d in g if d.missing_key
    ]
    if warnings:
        lines += ["", "warnings:"]
        lines.extend(f"  {warning}" for warning in warnings)
    return "\n".join(lines) + "\n"


def _describe(settings: Settings, deployment: Deployment) -> str:
    target = deployment.target
    key = _key_source(settings, deployment.adapter, deployment.where, target.api_key is not None)
    text = f"{target.provider}/{target.model}  {target.api_base}  key: {key}"
    return text + (f"  id: {deployment.id}" if "id" in deployment.model_info else "")


def _describe_wildcard(settings: Settings, deployments: Deployments, params: LiteLLMParams, where: str) -> str:
    if params.model == "*":
        reachable = [
            f"{name} ({_first_set(settings.env, adapter.key_env) or _first_set(settings.env, adapter.base_env)})"
            for name, adapter in deployments.adapters.items()
            if name in deployments.configured_providers()
        ]
        return "any <provider>/<model> (or gpt-…, claude-…) of a provider with a key: " + (
            ", ".join(reachable) or "none"
        )
    adapter = _adapter_of(deployments, params.model)
    if adapter is None:
        return f"{params.model}"
    has_key = bool(params.api_key) or _first_set(settings.env, adapter.key_env) is not None
    return f"{params.model}  key: {_key_source(settings, adapter, where, has_key)}"


def _key_source(settings: Settings, adapter: Adapter, where: str | None, has_key: bool) -> str:
    if where is not None:
        path = f"{where}.litellm_params.api_key"
        if path in settings.env_refs:
            return f"{settings.env_refs[path]} (config: os.environ/{settings.env_refs[path]})"
        entry = _entry(settings, where)
        if entry is not None and entry.api_key:
            return "config (litellm_params.api_key)"
    name = _first_set(settings.env, adapter.key_env)
    if name is not None:
        return f"{name} (environment)"
    if not adapter.key_required:
        return "none needed"
    wanted = " or ".join(adapter.key_env) or "litellm_params.api_key"
    return f"MISSING (set {wanted})" if not has_key else "(unknown)"


def _master_key_source(settings: Settings) -> str:
    if settings.master_key is None:
        return "none (--allow-no-auth)"
    ref = settings.env_refs.get("general_settings.master_key")
    if ref is not None:
        return f"{ref} (config: os.environ/{ref})"
    if settings.file.general_settings.master_key:
        return "config (general_settings.master_key)"
    return "LITELLM_MASTER_KEY (environment)"


def _routing(settings: Settings) -> str:
    resolved = settings.resolved
    stream = resolved.stream_timeout or resolved.timeout
    return (
        f"num_retries {resolved.num_retries}, timeout {resolved.timeout:g} s, stream timeout {stream:g} s, "
        f"drop_params {str(resolved.drop_params).lower()}, strategy {resolved.routing_strategy}"
    )


def _entry(settings: Settings, where: str) -> LiteLLMParams | None:
    index = where.removeprefix("model_list[").removesuffix("]")
    if not index.isdigit() or int(index) >= len(settings.file.model_list):
        return None
    return settings.file.model_list[int(index)].litellm_params


def _adapter_of(deployments: Deployments, upstream: str) -> Adapter | None:
    prefix, slash, _ = upstream.partition("/")
    if slash and prefix in deployments.adapters:
        return deployments.adapters[prefix]
    for adapter in deployments.adapters.values():
        if adapter.model_prefixes and upstream.startswith(adapter.model_prefixes):
            return adapter
    return None


def _first_set(env: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((name for name in names if env.get(name)), None)
