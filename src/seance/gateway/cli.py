"""`seance gateway`: parse and validate the config, then serve."""

from __future__ import annotations

import os
from pathlib import Path

import click

from seance.gateway.config import ConfigError, load_settings, require_master_key
from seance.gateway.logs import FORMATS, LEVELS
from seance.gateway.logs import setup as setup_logging


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="CONFIG_FILE_PATH",
    help="LiteLLM-format config.yaml (default: $CONFIG_FILE_PATH; none: serve every provider with a key).",
)  # fmt: skip
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=4000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256))
@click.option("--allow-no-auth", is_flag=True, help="Serve without a master key (local experiments only).")
@click.option(
    "--secrets", "secrets_path", type=click.Path(dir_okay=False, path_type=Path),
    help="SOPS-encrypted secrets file whose service section becomes the gateway's environment.",
)  # fmt: skip
@click.option("--service", default="litellm", show_default=True, help="Section of --secrets to use.")
@click.option(
    "--log-level", envvar=["SEANCE_LOG", "LITELLM_LOG"], type=click.Choice(LEVELS, case_sensitive=False),
    help="Default info (start and stop lines, warnings). Set to info or debug explicitly, also through "
    "SEANCE_LOG or LITELLM_LOG, it turns the access log on.",
)
@click.option("--log-format", envvar="SEANCE_LOG_FORMAT", default="plain", show_default=True,
              type=click.Choice(FORMATS), help="json: one JSON object per line, for log collectors.")  # fmt: skip
@click.option("--access-log/--no-access-log", default=None, envvar="SEANCE_ACCESS_LOG",
              help="One line per request (method, path, status, model, deployment, duration, request id).")  # fmt: skip
@click.option("--graceful-timeout", default=25.0, show_default=True, type=click.FloatRange(0),
              help="Seconds in-flight requests get to finish after SIGTERM.")  # fmt: skip
def gateway(
    config_path: Path | None,
    host: str,
    port: int,
    workers: int,
    allow_no_auth: bool,
    secrets_path: Path | None,
    service: str,
    log_level: str | None,
    log_format: str,
    access_log: bool | None,
    graceful_timeout: float,
) -> None:
    """Serve the LLM gateway (OpenAI- and Anthropic-compatible) on HOST:PORT."""
    environ = dict(os.environ)
    if secrets_path is not None:
        environ.update(_secrets_env(secrets_path, service))
    setup_logging((log_level or "info").lower(), log_format)  # before the config's warnings are logged
    try:
        settings = load_settings(config_path, environ)
        require_master_key(settings, allow_no_auth)
        from seance.gateway.app import Gateway  # the server's imports only when serving
        from seance.gateway.pipeline import hooks

        if access_log is None:
            access_log = log_level is not None and log_level.lower() in ("info", "debug")
        features = hooks.Features(settings.master_key, allow_no_auth, access_log, log_format)
        app = Gateway(settings, hooks.build(features))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    from seance.gateway.server import serve

    serve(app, host=host, port=port, workers=workers, graceful_timeout=graceful_timeout)


def _secrets_env(path: Path, service: str) -> dict[str, str]:
    from seance.secrets import SecretsError, load_secrets

    try:
        return dict(load_secrets(path).service(service))
    except SecretsError as exc:
        raise click.ClickException(str(exc)) from None
