"""`seance gateway`: parse and validate the config, then serve."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from seance.gateway.config import ConfigError, Settings, load_settings, require_master_key
from seance.gateway.logs import FORMATS, LEVELS
from seance.gateway.logs import setup as setup_logging

if TYPE_CHECKING:
    from seance.gateway.store import SpendOptions, Store


@click.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="CONFIG_FILE_PATH",
    help="LiteLLM-format config.yaml (default: $CONFIG_FILE_PATH; none: serve every provider with a key).",
)  # fmt: skip
@click.option("--watch-config", is_flag=True,
              help="Reload the config when its file changes (as on SIGHUP); a bad one is refused, logged.")  # fmt: skip
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=4000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256))
@click.option("--allow-no-auth", is_flag=True, help="Serve without a master key (local experiments only).")
@click.option(
    "--no-db", is_flag=True,
    help="No database: the master key only (no virtual keys, teams, budgets or spend log). Default: SQLite "
    "seance.db in the working directory (or SEANCE_DB), PostgreSQL with DATABASE_URL.",
)  # fmt: skip
@click.option(
    "--secrets", "secrets_path", type=click.Path(dir_okay=False, path_type=Path),
    help="SOPS-encrypted secrets file whose service section becomes the gateway's environment.",
)  # fmt: skip
@click.option("--service", default="litellm", show_default=True, help="Section of --secrets to use.")
@click.option(
    "--secrets-override", is_flag=True,
    help="Let --secrets values replace variables already set (default: the environment wins, as with dotenv).",
)  # fmt: skip
@click.option(
    "--log-level",
    envvar=["SEANCE_LOG", "LITELLM_LOG"],
    type=click.Choice(LEVELS, case_sensitive=False),
    help="Default info (start and stop lines, warnings). Set to info or debug explicitly, also through "
    "SEANCE_LOG or LITELLM_LOG, it turns the access log on.",
)
@click.option("--log-format", envvar="SEANCE_LOG_FORMAT", default="plain", show_default=True,
              type=click.Choice(FORMATS), help="json: one JSON object per line, for log collectors.")  # fmt: skip
@click.option("--access-log/--no-access-log", default=None, envvar="SEANCE_ACCESS_LOG",
              help="One line per request (method, path, status, model, deployment, duration, request id).")  # fmt: skip
@click.option("--metrics/--no-metrics", default=None, envvar="SEANCE_METRICS",
              help="Prometheus metrics on GET /metrics [default: on when litellm_settings.callbacks names "
              "prometheus, as with LiteLLM].")  # fmt: skip
@click.option("--graceful-timeout", default=25.0, show_default=True, type=click.FloatRange(0),
              help="Seconds in-flight requests get to finish after SIGTERM.")  # fmt: skip
@click.option("--max-header-bytes", default=65536, show_default=True, type=click.IntRange(1024),
              help="Largest request line and headers; beyond it: 431.")  # fmt: skip
@click.option("--header-timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds a request's headers may take to arrive (also a new connection's first request); "
              "beyond it: 408.")  # fmt: skip
@click.option("--body-timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Window (seconds) over which a request body must keep --body-min-rate; else 408.")  # fmt: skip
@click.option("--body-min-rate", default=1024, show_default=True, type=click.IntRange(0),
              help="Bytes a second a request body must arrive at, over each --body-timeout window.")  # fmt: skip
@click.option("--keepalive-timeout", default=75.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds an idle keep-alive connection is kept.")  # fmt: skip
@click.option("--max-connections", type=click.IntRange(1),
              help="Client connections per worker; at the cap the longest-idle one is closed, or a new one gets "
              "503 [default: half the descriptor limit, at most 65536].")  # fmt: skip
@click.option("--upstream-connections", default=2048, show_default=True, type=click.IntRange(1),
              help="Concurrent connections (streams included) per upstream origin and worker.")  # fmt: skip
@click.option("--upstream-pool-timeout", default=10.0, show_default=True, type=click.FloatRange(0.01),
              help="Seconds a request may wait for one of them; beyond it: 503 naming this limit.")  # fmt: skip
@click.option("--upstream-max-header-bytes", default=65536, show_default=True, type=click.IntRange(1024),
              help="Largest status line and headers of an upstream answer; beyond it: 502.")  # fmt: skip
@click.option("--upstream-max-body-bytes", default=128 * 2**20, show_default=True, type=click.IntRange(1024),
              help="Largest non-streamed upstream answer (decoded); beyond it: 502. Streams: any length.")  # fmt: skip
def gateway(
    config_path: Path | None,
    watch_config: bool,
    host: str,
    port: int,
    workers: int,
    allow_no_auth: bool,
    no_db: bool,
    secrets_path: Path | None,
    service: str,
    secrets_override: bool,
    log_level: str | None,
    log_format: str,
    access_log: bool | None,
    metrics: bool | None,
    graceful_timeout: float,
    max_header_bytes: int,
    header_timeout: float,
    body_timeout: float,
    body_min_rate: int,
    keepalive_timeout: float,
    max_connections: int | None,
    upstream_connections: int,
    upstream_pool_timeout: float,
    upstream_max_header_bytes: int,
    upstream_max_body_bytes: int,
) -> None:
    """Serve the LLM gateway (OpenAI- and Anthropic-compatible) on HOST:PORT."""
    if watch_config and config_path is None:
        raise click.UsageError("--watch-config needs a config file (--config or CONFIG_FILE_PATH)")
    environ = dict(os.environ)
    if secrets_path is not None:
        environ = _with_secrets(environ, _secrets_env(secrets_path, service), secrets_path, secrets_override)
    setup_logging((log_level or "info").lower(), log_format)  # before the config's warnings are logged
    with contextlib.ExitStack() as cleanup:
        try:
            settings = load_settings(config_path, environ)
            require_master_key(settings, allow_no_auth)
            if metrics is not None:
                settings = dataclasses.replace(settings, metrics=metrics)
            from seance.gateway.app import Gateway  # the server's imports only when serving
            from seance.gateway.metrics import Metrics, multiprocess_dir, worker_exited
            from seance.gateway.pipeline import hooks

            if access_log is None:
                access_log = log_level is not None and log_level.lower() in ("info", "debug")
            counted = None
            shared_dir = None
            if settings.metrics:
                if workers > 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # read by prometheus_client
                    shared_dir = cleanup.enter_context(multiprocess_dir(os.environ))
                counted = Metrics(settings, shared_dir)
            from seance.gateway.shared_state import find_redis

            store = None if no_db else _store(settings)

            features = hooks.Features(
                settings.master_key, allow_no_auth, access_log, log_format, settings=settings,
                redis=find_redis(settings), metrics=counted, traces=settings.traces, store=store,
            )  # fmt: skip
            from seance.gateway.upstream import Limits
            from seance.gateway.upstream.transport import HTTPTransport

            upstream = Limits(
                upstream_connections, upstream_pool_timeout, upstream_max_header_bytes, upstream_max_body_bytes
            )
            app = Gateway(settings, hooks.build(features), HTTPTransport(limits=upstream), metrics=counted, store=store)
            if store is not None:
                _prepare(store, settings.master_key)
            from seance.gateway.reload import Reloader

            def reload_settings() -> Settings:
                """The start's loading and checks again (SIGHUP, --watch-config)."""
                reloaded = load_settings(config_path, environ)
                require_master_key(reloaded, allow_no_auth)
                if metrics is not None:
                    reloaded = dataclasses.replace(reloaded, metrics=metrics)
                return reloaded

            app.reloader = Reloader(reload_settings, config_path, watch_config)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        from seance.gateway.server import default_max_connections, serve
        from seance.gateway.serving import ServingLimits

        limits = ServingLimits(
            max_header_bytes, header_timeout, body_timeout, body_min_rate, keepalive_timeout,
            max_connections or default_max_connections(),
        )  # fmt: skip
        exited = worker_exited(shared_dir) if shared_dir else None
        serve(app, host=host, port=port, workers=workers, graceful_timeout=graceful_timeout, limits=limits,
              worker_exited=exited)  # fmt: skip


def _store(settings: Settings) -> Store:
    """The store the settings name, not yet opened (a URL that names no database Seance can use
    stops the start here, with one line)."""
    from seance.gateway.store import Store, StoreError, find_database

    try:
        return Store(
            find_database(settings), access_groups(settings), cache_ttl(settings), spend_options(settings),
            settings.file.litellm_settings.max_end_user_budget,
        )  # fmt: skip
    except StoreError as exc:
        raise ConfigError(str(exc)) from None


def _prepare(store: Store, master_key: str | None) -> None:
    """The store's schema made or migrated before any worker starts, and only once the rest of the
    config is accepted: a start refused for a bad model_list leaves no seance.db behind. A database
    that cannot be used stops the start here, with one line."""
    from seance.gateway.store import StoreError

    try:
        store.prepare(master_key)
    except StoreError as exc:
        raise ConfigError(str(exc)) from None


def access_groups(settings: Settings) -> dict[str, frozenset[str]]:
    """LiteLLM's model_info.access_groups: a name a key's `models` may list for several groups."""
    groups: dict[str, set[str]] = {}
    for entry in settings.file.model_list:
        for group in entry.model_info.get("access_groups") or ():
            groups.setdefault(str(group), set()).add(entry.model_name)
    return {name: frozenset(models) for name, models in groups.items()}


def cache_ttl(settings: Settings) -> float:
    from seance.gateway.store.keys import TTL

    value = (settings.file.general_settings.model_extra or {}).get("user_api_key_cache_ttl")
    return float(value) if isinstance(value, int | float) and value > 0 else TTL


def spend_options(settings: Settings) -> SpendOptions:
    """general_settings.proxy_batch_write_at and disable_spend_logs, as LiteLLM spells them."""
    from seance.gateway.store import SpendOptions

    general = settings.file.general_settings
    interval = general.proxy_batch_write_at or SpendOptions().interval
    return SpendOptions(interval, rows=not general.disable_spend_logs)


def _with_secrets(environ: dict[str, str], values: dict[str, str], path: Path, override: bool) -> dict[str, str]:
    """The environment wins over the file (what `export OPENAI_API_KEY=…` means), unless `override`."""
    differing = sorted(name for name, value in values.items() if environ.get(name, value) != value)
    if differing and not override:
        names = ", ".join(differing)
        click.echo(f"note: {names} from the environment, not {path} (--secrets-override for the file's)", err=True)
    return {**environ, **values} if override else {**values, **environ}


def _secrets_env(path: Path, service: str) -> dict[str, str]:
    from seance.secrets import SecretsError, load_secrets

    try:
        return dict(load_secrets(path).service(service))
    except SecretsError as exc:
        raise click.ClickException(str(exc)) from None
