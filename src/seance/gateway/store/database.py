"""Which database (the config and environment say), its engine, and its migrations."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from seance.gateway.config import Settings

log = logging.getLogger("seance.gateway")

MIGRATIONS = Path(__file__).parent / "migrations"
# any constant: the PostgreSQL advisory lock replicas take while one of them migrates
MIGRATION_LOCK = 0x5EA9CE
# a database that does not answer within this long is treated as down (the caches answer instead)
CONNECT_TIMEOUT = 5.0
SQLITE_POOL = {"pool_size": 2, "max_overflow": 3}


def refused_value(exc: BaseException) -> bool:
    """The database refused a value itself (SQLSTATE class 22, "data exception": too long, out of
    range), not the statement, a constraint or the connection: the same write would fail again."""
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        if str(getattr(cause, "sqlstate", "") or "").startswith("22"):
            return True
        seen.append(cause)
        cause = getattr(cause, "orig", None) or cause.__cause__  # (SQLAlchemy's wrapper, then the chain)
    return False


class StoreError(Exception):
    """The database cannot be used: its message says which and why (never its password)."""


@dataclass(frozen=True)
class Database:
    url: str = field(repr=False)  # may hold a password: never logged, see `where`
    source: str  # where it was found, for messages
    connect_args: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def where(self) -> str:
        parts = urlsplit(self.url)
        if self.is_sqlite:
            return f"SQLite {parts.path.lstrip('/') or ':memory:'} (from {self.source})"
        port = f":{parts.port}" if parts.port else ""
        return f"PostgreSQL {parts.hostname}{port}{parts.path} (from {self.source})"

    def engine(self) -> AsyncEngine:
        if self.is_sqlite:
            # Each pooled aiosqlite connection is a thread of its own, with its own malloc arena and
            # page cache: ~3 MB of RSS each for as long as the pool keeps it. SQLite takes one writer
            # at a time anyway (the spend log's), and key reads are rare (cached): two connections
            # kept, three more at a burst, instead of SQLAlchemy's 5 + 10.
            pool = {} if sa.make_url(self.url).database in (None, "", ":memory:") else SQLITE_POOL
            engine = create_async_engine(
                self.url, connect_args={"timeout": CONNECT_TIMEOUT, **self.connect_args}, **pool
            )
            sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            return engine
        return create_async_engine(
            self.url,
            pool_size=5,
            max_overflow=5,
            pool_pre_ping=True,
            pool_timeout=CONNECT_TIMEOUT,
            connect_args={"timeout": CONNECT_TIMEOUT, "command_timeout": 30, **self.connect_args},
        )


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    """WAL: the spend writer's commits append to a log instead of rewriting pages under a rollback
    journal, and the workers' key reads never wait for a write. synchronous=NORMAL is WAL's usual
    pairing: a commit survives the process dying; a power cut may lose the last ones, never
    corrupt the file. (An in-memory database keeps its own journal mode.)"""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def find_database(settings: Settings, workdir: Path | None = None) -> Database:
    """The database the config and environment name: `DATABASE_URL`, then
    `general_settings.database_url`, then `SEANCE_DB` (a SQLite file), then `seance.db` in the
    working directory."""
    env = settings.env
    url = env.get("DATABASE_URL")
    if url:
        return _postgres(url, "DATABASE_URL")
    configured = settings.file.general_settings.database_url
    if configured:
        return _postgres(configured, "general_settings.database_url")
    if env.get("SEANCE_DB"):
        return sqlite(Path(env["SEANCE_DB"]), "SEANCE_DB")
    return sqlite((workdir or Path.cwd()) / "seance.db", "default")


def sqlite(path: Path, source: str) -> Database:
    return Database(f"sqlite+aiosqlite:///{path.resolve()}", source)


def from_url(url: str, source: str) -> Database:
    """A database named by URL (PostgreSQL in LiteLLM's spelling, or sqlite:///path)."""
    return _postgres(url, source)


def _postgres(url: str, source: str) -> Database:
    """LiteLLM's spelling (`postgresql://`, `postgres://`, `?sslmode=…`) in asyncpg's."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "sqlite":
        return Database(url.replace("sqlite://", "sqlite+aiosqlite://", 1) if "+" not in parts.scheme else url, source)
    if scheme not in ("postgresql", "postgres"):
        raise StoreError(
            f"{source}: a PostgreSQL URL (postgresql://user:password@host:5432/db) is expected, not {scheme}://"
        )
    query = parse_qsl(parts.query)
    args: dict[str, Any] = {}
    kept = []
    for name, value in query:
        if name == "sslmode":  # libpq's name; asyncpg takes it as `ssl`
            args["ssl"] = value
        elif name in ("schema", "connection_limit", "pool_timeout", "pgbouncer"):  # Prisma's, not libpq's
            continue
        else:
            kept.append((name, value))
    clean = urlunsplit(("postgresql+asyncpg", parts.netloc, parts.path, urlencode(kept), ""))
    return Database(clean, source, args)


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision. Idempotent; replicas that start together take
    turns (a PostgreSQL advisory lock; on SQLite a file lock beside the database)."""
    from alembic import command
    from alembic.config import Config

    def upgrade(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with _file_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        await connection.run_sync(upgrade)


@contextlib.asynccontextmanager
async def _file_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """SQLite's turn-taking: an exclusive lock on a file beside the database (waited for in a
    thread: other workers' event loops go on meanwhile)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.lock", "a+b") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
