from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from tests.fresh import packages_after

from seance.gateway.config import load_settings
from seance.gateway.store import Store, StoreError, find_database, migrate, tables


def _settings(tmp_path: Path, env: dict[str, str], general: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text(
        f"model_list: [{{model_name: m, litellm_params: {{model: openai/m}}}}]\ngeneral_settings: {general or {}}\n"
    )
    return load_settings(path, env, announce=False)


def test_sqlite_file_in_the_working_directory_by_default(tmp_path: Path) -> None:
    database = find_database(_settings(tmp_path, {}), workdir=tmp_path)
    assert database.is_sqlite and database.url.endswith(f"{tmp_path}/seance.db")
    assert database.where.startswith("SQLite") and "default" in database.where


def test_seance_db_names_the_file(tmp_path: Path) -> None:
    database = find_database(_settings(tmp_path, {"SEANCE_DB": str(tmp_path / "x.db")}))
    assert database.url == f"sqlite+aiosqlite:///{tmp_path}/x.db"


def test_litellm_spelling_of_postgres_urls(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://u:secret@db.example:5433/litellm?sslmode=require&connection_limit=5"}
    database = find_database(_settings(tmp_path, env))
    assert database.url == "postgresql+asyncpg://u:secret@db.example:5433/litellm"
    assert database.connect_args == {"ssl": "require"}
    assert "secret" not in database.where and "db.example:5433/litellm" in database.where
    assert "secret" not in repr(database)


def test_general_settings_database_url(tmp_path: Path) -> None:
    database = find_database(_settings(tmp_path, {}, {"database_url": "postgres://h/db"}))
    assert database.url.startswith("postgresql+asyncpg://h/db") and "general_settings" in database.source


def test_not_a_postgres_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"DATABASE_URL: a PostgreSQL URL .* not mysql://"):
        find_database(_settings(tmp_path, {"DATABASE_URL": "mysql://h/db"}))


def test_unreachable_database_stops_the_start_with_one_line(tmp_path: Path) -> None:
    store = Store(find_database(_settings(tmp_path, {"DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/db"})))
    with pytest.raises(StoreError, match=r"the database PostgreSQL 127.0.0.1:1/db .* cannot be used") as caught:
        store.prepare()
    assert "pw" not in str(caught.value)


def test_the_migration_runs_apart_from_the_serving_process(tmp_path: Path) -> None:
    """Alembic and the migration scripts (14 MB of RSS) stay out of the process that serves: a
    fresh interpreter, as `seance gateway` is, has none of them loaded after `prepare`."""
    path = tmp_path / "seance.db"
    program = (
        "from pathlib import Path\nfrom seance.gateway.store import Store, sqlite\n"
        f"Store(sqlite(Path({str(path)!r}), 'test')).prepare()\n"
    )
    assert not packages_after(program) & {"alembic", "mako"}
    with sqlite3.connect(path) as db:  # and the database was migrated all the same
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    assert set(tables.metadata.tables) <= names


async def test_a_burst_leaves_few_sqlite_connections_open(tmp_path: Path) -> None:
    """Each pooled aiosqlite connection is a thread with its own malloc arena and page cache (~3 MB
    of RSS): after a burst of readers (a new key's first requests arriving together) the pool keeps
    two, and never opens more than five at once."""
    engine = find_database(_settings(tmp_path, {"SEANCE_DB": str(tmp_path / "x.db")})).engine()
    threads = threading.active_count()
    most = 0

    async def read() -> None:
        nonlocal most
        async with engine.connect() as db:
            await db.execute(sa.text("SELECT 1"))
            most = max(most, threading.active_count() - threads)
            await asyncio.sleep(0.05)

    try:
        await asyncio.gather(*(read() for _ in range(20)))
        assert most <= 5
        assert engine.pool.checkedin() == 2  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_migrations_are_idempotent_and_safe_together(tmp_path: Path, db_env: dict[str, str]) -> None:
    database = find_database(_settings(tmp_path, db_env))
    engines = [database.engine() for _ in range(3)]
    try:
        await asyncio.gather(*(migrate(engine) for engine in engines))  # replicas starting at once
        await migrate(engines[0])  # and again: nothing to do
        async with engines[0].connect() as db:
            version = (await db.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
            names = await db.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert version == "0005"
        assert set(tables.metadata.tables) <= set(names)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_migrations_build_the_schema_of_tables_py(tmp_path: Path, db_env: dict[str, str]) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = find_database(_settings(tmp_path, db_env)).engine()
    try:
        await migrate(engine)
        async with engine.connect() as db:
            diff = await db.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), tables.metadata))
        assert diff == []
    finally:
        await engine.dispose()


def upgrade_to(revision: str) -> Callable[[sa.Connection], None]:
    """Migrate a connection's database to `revision` (not the head): the schema an older release left."""

    def run(connection: sa.Connection) -> None:
        from alembic import command
        from alembic.config import Config

        from seance.gateway.store.database import MIGRATIONS

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    return run


async def test_0005_lets_the_keys_made_before_it_set_every_cache_control(
    tmp_path: Path, db_env: dict[str, str]
) -> None:
    engine = find_database(_settings(tmp_path, db_env)).engine()
    before = [sa.column(c.name, c.type) for c in tables.keys.c if c.name != "allowed_cache_controls"]
    old_keys = sa.table("seance_keys", *before)
    try:
        async with engine.begin() as db:
            await db.run_sync(upgrade_to("0004"))
            await db.execute(sa.insert(old_keys).values(
                token="t" * 64, spend=0.0, models=[], aliases={}, config={}, permissions={}, metadata={}, tags=[],
                model_rpm_limit={}, model_tpm_limit={}, model_spend={}, model_max_budget={}, created_at=0.0,
                updated_at=0.0,
            ))  # fmt: skip
        await migrate(engine)
        async with engine.connect() as db:
            found = await db.execute(sa.select(tables.keys.c.allowed_cache_controls))
            assert found.scalar_one() == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"])
async def test_0003_gives_existing_members_their_rows(tmp_path: Path, engine_name: str) -> None:
    """Teams made before team memberships had rows get one per member, with the max_budget_in_team
    that /team/member_update kept in members_with_roles then."""
    from tests.databases import create_pg_database, drop_pg_database, pg_url

    pg_name = await asyncio.to_thread(create_pg_database) if engine_name == "postgresql" else None
    env = {"DATABASE_URL": pg_url(pg_name)} if pg_name else {"SEANCE_DB": str(tmp_path / "old.db")}
    engine = find_database(_settings(tmp_path, env)).engine()
    members = [{"user_id": "lead", "role": "admin"}, {"user_id": "dev", "role": "user", "max_budget_in_team": 5}]
    try:
        async with engine.begin() as db:
            await db.run_sync(upgrade_to("0002"))
            await db.execute(sa.insert(tables.teams).values(team_id="old-team", members_with_roles=members,
                                                            created_at=0.0, updated_at=0.0))  # fmt: skip
        await migrate(engine)
        memberships = tables.team_memberships
        async with engine.connect() as db:
            rows = await db.execute(sa.select(memberships.c.user_id, memberships.c.spend, memberships.c.max_budget))
            assert sorted(rows.all()) == [("dev", 0.0, 5.0), ("lead", 0.0, None)]
    finally:
        await engine.dispose()
        if pg_name:
            await asyncio.to_thread(drop_pg_database, pg_name)


async def test_the_spend_logs_user_team_and_end_user_indexes_hold_only_the_rows_that_have_one(
    tmp_path: Path, db_env: dict[str, str]
) -> None:
    """Migration 0004: each index is partial (`IS NOT NULL`), and a lookup of a value still uses it."""
    engine = find_database(_settings(tmp_path, db_env)).engine()
    columns = ("user", "team_id", "end_user")
    try:
        await migrate(engine)
        async with engine.connect() as db:
            if engine.dialect.name == "sqlite":
                found = await db.execute(
                    sa.text(
                        "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'seance_spend_logs' AND type = 'index'"
                    )
                )
            else:
                found = await db.execute(
                    sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'seance_spend_logs'")
                )
            definitions = {name: definition for name, definition in found}
            plans = []
            for column in columns:
                if engine.dialect.name == "sqlite":
                    plan = await db.execute(
                        sa.text(f'EXPLAIN QUERY PLAN SELECT * FROM seance_spend_logs WHERE "{column}" = :v'), {"v": "x"}
                    )
                    plans.append(" ".join(str(row[-1]) for row in plan))
    finally:
        await engine.dispose()
    for column in columns:
        assert "IS NOT NULL" in definitions[f"ix_seance_spend_logs_{column}"]
    assert "IS NOT NULL" not in definitions["ix_seance_spend_logs_api_key"]
    for column, plan in zip(columns if plans else (), plans, strict=True):
        assert f"USING INDEX ix_seance_spend_logs_{column}" in plan
