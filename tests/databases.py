"""The databases the store's tests run on: the embedded SQLite file and the real PostgreSQL on
127.0.0.1:5432 (trust auth, user postgres). One suite, both engines: a fixture parametrised over
them. Each test session gets a PostgreSQL database of its own (a random name), dropped at the end;
every test writes under random ids, so tests share it without seeing each other."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def pg_url(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_pg_database() -> str:
    name = "seance_test_" + secrets.token_hex(6)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this session: its URL (LiteLLM's postgresql:// spelling)."""
    name = create_pg_database()
    yield pg_url(name)
    drop_pg_database(name)


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("db") / "seance.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The environment that points the gateway at one of the two (DATABASE_URL or SEANCE_DB)."""
    if request.param == "sqlite":
        return {"SEANCE_DB": request.getfixturevalue("sqlite_database")}
    return {"DATABASE_URL": request.getfixturevalue("pg_database")}
