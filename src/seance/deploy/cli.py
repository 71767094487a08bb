"""`seance synth` and `seance deploy`."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from seance.deploy.errors import DeployError
from seance.deploy.objects import Manifest
from seance.deploy.settings import ENVIRONMENTS, Settings, deep_merge, load_settings, parse_set_option

DEFAULT_SECRETS = Path("secrets/secrets.yaml")
DEFAULT_OUT = Path("dist/seance.k8s.yaml")

F = TypeVar("F", bound=Callable[..., Any])


def _common_options(func: F) -> F:
    options = [
        click.option(
            "--secrets", "secrets_path", type=click.Path(dir_okay=False, path_type=Path),
            default=DEFAULT_SECRETS, show_default=True, help="SOPS-encrypted secrets file.",
        ),
        click.option(
            "--values", "values_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
            help="YAML file of settings merged onto the environment's defaults (repeatable).",
        ),
        click.option(
            "--set", "set_options", multiple=True, metavar="PATH=VALUE",
            help="Override one setting, e.g. --set replicas=3 --set routing=httproute (repeatable).",
        ),
        click.option(
            "--gateway-config", "gateway_config", type=click.Path(dir_okay=False, path_type=Path),
            help="A LiteLLM config.yaml for the gateway, deployed as is (the setting gateway.config_file).",
        ),
        click.option(
            "--allow-example-secrets", is_flag=True,
            help="Let prod use secrets encrypted for the public development key or the example master key.",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _env_option(required: bool) -> Callable[[F], F]:
    choice = click.Choice(sorted(ENVIRONMENTS))
    if required:  # no default at all: click only reports a missing option when none is declared
        return click.option("--env", "env", type=choice, required=True, help="Target environment.")
    return click.option("--env", "env", type=choice, default="dev", show_default=True, help="Target environment.")


@click.command()
@_env_option(required=False)
@_common_options
@click.option(
    "--out", "out", default=str(DEFAULT_OUT), show_default=True,
    help="Where to write the manifest ('-' for stdout). The file holds the Secret: it is written 0600.",
)  # fmt: skip
def synth(
    env: str,
    secrets_path: Path,
    values_files: Sequence[Path],
    set_options: Sequence[str],
    gateway_config: Path | None,
    allow_example_secrets: bool,
    out: str,
) -> None:
    """Synthesize the Kubernetes manifest of one environment as one multi-document YAML."""
    try:
        settings = _settings(env, values_files, set_options, gateway_config)
        text, documents = _synthesize(settings, secrets_path, allow_example_secrets)
        if out == "-":
            sys.stdout.write(text)
            return
        _write_private(Path(out), text)
    except DeployError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(documents)} objects for {env} to {out}", err=True)


@click.command()
@_env_option(required=True)
@_common_options
@click.option("--dry-run", is_flag=True, help="Server-side dry run: validate against the cluster, change nothing.")
@click.option("--context", default=None, help="kubectl context (default: the current one).")
@click.option("--timeout", "timeout_seconds", default=300, show_default=True, type=click.IntRange(1),
              help="Seconds to wait for each rollout.")  # fmt: skip
@click.option("--kubectl", "kubectl_path", default="kubectl", show_default=True, help="kubectl executable.")
def deploy(
    env: str,
    secrets_path: Path,
    values_files: Sequence[Path],
    set_options: Sequence[str],
    gateway_config: Path | None,
    allow_example_secrets: bool,
    dry_run: bool,
    context: str | None,
    timeout_seconds: int,
    kubectl_path: str,
) -> None:
    """Synthesize, apply server-side into the settings' namespace, and wait for the rollout."""
    from seance.deploy.kubectl import Kubectl, Plan, apply_and_wait
    from seance.deploy.synth import omitted_objects

    try:
        settings = _settings(env, values_files, set_options, gateway_config)
        text, documents = _synthesize(settings, secrets_path, allow_example_secrets)
        min_kubernetes, requirement = settings.min_kubernetes
        plan = Plan(
            summary=f"{env}: {len(documents)} objects, image {settings.image}",
            manifest=text,
            namespace=settings.namespace,
            stale=omitted_objects(documents),
            rollouts=(["valkey"] if settings.valkey.mode == "in-cluster" else []) + ["litellm"],
            min_kubernetes=min_kubernetes,
            requirement=requirement,
        )
        apply_and_wait(Kubectl(kubectl_path, context), plan, timeout_seconds, dry_run)
    except DeployError as exc:
        raise click.ClickException(str(exc)) from None


def _settings(
    env: str, values_files: Sequence[Path], set_options: Sequence[str], gateway_config: Path | None
) -> Settings:
    overrides: dict[str, Any] = {}
    for path in values_files:
        overrides = deep_merge(overrides, _read_values(path))
    for assignment in set_options:
        overrides = deep_merge(overrides, parse_set_option(assignment))
    if gateway_config is not None:
        overrides = deep_merge(overrides, {"gateway": {"config_file": str(gateway_config)}})
    return load_settings(env, overrides)


def _synthesize(settings: Settings, secrets_path: Path, allow_example_secrets: bool) -> tuple[str, list[Manifest]]:
    """Settings are checked before the secrets are decrypted: a typo fails fast, with no key needed.
    A production manifest is refused with the repository's example secrets, and its example settings
    are warned about."""
    from seance.deploy.gateway_config import load_config_file
    from seance.deploy.production import example_setting_warnings, refuse_example_secrets
    from seance.deploy.secrets_source import load_secrets_source
    from seance.deploy.synth import dump_yaml, synthesize

    source = load_secrets_source(secrets_path)
    if settings.environment == "prod":
        if not allow_example_secrets:
            refuse_example_secrets(source)
        for warning in example_setting_warnings(settings):
            click.echo(f"warning: {warning}", err=True)
    config_file = None
    if settings.gateway.config_file:
        config_file = load_config_file(settings, source.values, str(secrets_path))
        for warning in config_file.warnings:
            click.echo(f"warning: {warning}", err=True)
    documents = synthesize(settings, source.values, config_file, str(secrets_path))
    return dump_yaml(documents), documents


def _read_values(path: Path) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeployError(f"{path}: cannot read values file: {exc.strerror}") from None
    except YAMLError as exc:
        raise DeployError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DeployError(f"{path}: a values file must be a mapping of settings")
    return data


def _write_private(path: Path, text: str) -> None:
    """Write via a 0600 temporary file and a rename: no reader ever sees a partial or open file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as exc:
        raise DeployError(f"{path}: cannot write the manifest: {exc.strerror}") from None
