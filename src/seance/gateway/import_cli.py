"""`seance import-litellm --from postgresql://…`: a LiteLLM proxy's keys, users, teams, organizations,
budgets and end users (with their spend) into this gateway's database (see store/litellm_import.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from seance.gateway.config import ConfigError, load_settings


@click.command("import-litellm")
@click.option("--from", "source", required=True, envvar="LITELLM_DATABASE_URL",
              help="The LiteLLM proxy's PostgreSQL (its DATABASE_URL): postgresql://user:pw@host:5432/db")  # fmt: skip
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="CONFIG_FILE_PATH",
    help="The gateway's config.yaml, for general_settings.database_url (else DATABASE_URL, SEANCE_DB, seance.db).",
)  # fmt: skip
def import_litellm(source: str, config_path: Path | None) -> None:
    """Copy keys, users, teams, organizations and budgets from a LiteLLM database. Idempotent."""
    from seance.gateway.store import Store, StoreError, find_database
    from seance.gateway.store.database import from_url
    from seance.gateway.store.litellm_import import import_litellm as run

    try:
        settings = load_settings(config_path, dict(os.environ), announce=False)
        store = Store(find_database(settings))
        store.prepare()
        origin = from_url(source, "--from")
    except (ConfigError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None

    async def go() -> str:
        target = store.database.engine()
        try:
            return str(await run(origin, target))
        finally:
            await target.dispose()

    try:
        report = asyncio.run(go())
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:
        raise click.ClickException(f"{origin.where}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None
    click.echo(f"imported into {store.database.where}: {report}")
