"""Where keys, teams, users, budgets and spend live: SQLAlchemy 2 (async) over SQLite by default (a
file, `seance.db` in the working directory or `SEANCE_DB`), PostgreSQL when `DATABASE_URL` or
`general_settings.database_url` names one (several replicas then share it).

    database.py     which database, its engine, and `migrate` (Alembic, under a lock)
    tables.py       the schema (Core tables, LiteLLM's column names)
    migrations/     the Alembic revisions
    keys.py         key hashing, and the in-process key cache the auth hook reads
    spend.py        the spend log: rows batched in memory, written in the background
    budgets.py      budget periods (budget_duration) reset on schedule

`Store` holds them for one process (one worker): the engine is made at the lifespan's start, after
the fork. The request path never waits on the database: the auth hook reads the key cache, the
spend hook appends to a batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from seance.gateway.context import MASTER_KEY_ALIAS, NOTHING, Limits
from seance.gateway.store import model_budgets, tables
from seance.gateway.store.database import Database, StoreError, find_database, migrate, sqlite
from seance.gateway.store.keys import MAX_ENTRIES, TTL, Budget, KeyCache, Ledger
from seance.gateway.store.spend import SpendLog, SpendOptions

if TYPE_CHECKING:
    from seance.gateway.store.budgets import Budgeted

log = logging.getLogger("seance.gateway")
DEFAULT_SPEND = SpendOptions()

__all__ = [
    "Database",
    "EndUser",
    "SpendOptions",
    "Store",
    "StoreError",
    "find_database",
    "migrate",
    "reason_of",
    "sqlite",
    "tables",
]


@dataclass(frozen=True, slots=True)
class EndUser:
    """What a request's end user (its `user`: LiteLLM's customer) is held to."""

    budget: Budget | None  # theirs, or max_end_user_budget's; blocked: a budget of 0
    limits: Limits | None  # their budget row's rpm_limit, tpm_limit, max_parallel_requests
    model_budgets: Mapping[str, Budget] = NOTHING  # their budget row's model_max_budget, by model


class Store:
    def __init__(
        self,
        database: Database,
        access_groups: Mapping[str, frozenset[str]] | None = None,
        ttl: float = TTL,
        spend: SpendOptions = DEFAULT_SPEND,
        end_user_budget: float | None = None,
    ) -> None:
        """`end_user_budget`: litellm_settings.max_end_user_budget, the budget of every end user
        without one of their own (None: those are not bounded)."""
        self.database = database
        self.end_user_budget_default = end_user_budget
        self._engine: AsyncEngine | None = None
        self.ledger = Ledger()
        self.spend = SpendLog(self.engine, self.ledger, spend.interval, spend.rows)
        self.keys = KeyCache(self.engine, self.ledger, self.spend.unwritten_for, access_groups, ttl)
        self._tasks: list[asyncio.Task[None]] = []
        # end user -> (their budget and limits or None, when read): most requests name none, most
        # end users have none
        self._end_users: dict[str, tuple[EndUser | None, float]] = {}

    @property
    def reachable(self) -> bool:
        """Whether the database answered the last time the key store or the spend log needed it
        (known from their work: nothing is asked of it to tell)."""
        return not (self.keys.failing or self.spend.failing)

    async def end_user(self, end_user: str) -> EndUser | None:
        """What a request's end user is held to: their budget (`/customer/new`, else
        max_end_user_budget) and the rpm/tpm/parallel limits of their budget row; cached like keys.
        None when they have neither, or the database cannot say (an outage does not refuse end users)."""
        found = self._end_users.get(end_user)
        if found is not None and time.monotonic() - found[1] < self.keys.ttl:
            return found[0]
        known = found[0] if found is not None else None
        E, B = tables.end_users, tables.budgets
        try:
            async with self.engine().connect() as db:
                row = (
                    await db.execute(
                        sa.select(E.c.spend, E.c.blocked, B.c.max_budget, B.c.rpm_limit, B.c.tpm_limit,
                                  B.c.max_parallel_requests, B.c.model_max_budget)
                        .select_from(E.outerjoin(B, B.c.budget_id == E.c.budget_id))
                        .where(E.c.user_id == end_user)
                    )
                ).first()  # fmt: skip
                label = f"End User={end_user}"
                per_model = model_budgets.parse(row.model_max_budget, label) if row is not None else ()
                spent_on = await model_budgets.spent(db, "end_user_model", end_user, per_model) if per_model else {}
        except Exception:
            return known
        scope = f"end_user:{end_user}"
        budget = limits = None
        default = self.end_user_budget_default
        # an end user not seen yet has spent nothing, and has no budget of their own
        spent, own, blocked = (float(row.spend), row.max_budget, row.blocked) if row is not None else (0.0, None, False)
        if row is not None or default is not None:
            self.ledger.read(scope, spent, self.spend.unwritten_for(scope))
        if blocked:
            budget = Budget(scope, f"End User={end_user} (blocked)", 0.0)
        elif own is not None:
            budget = Budget(scope, f"End User={end_user}", float(own))
        elif default is not None:
            budget = Budget(scope, f"End User={end_user} (litellm_settings.max_end_user_budget)", default)
        if row is not None and (row.rpm_limit is not None or row.tpm_limit is not None
                                or row.max_parallel_requests is not None):  # fmt: skip
            limits = Limits(scope, row.rpm_limit, row.tpm_limit, row.max_parallel_requests)
        by_model = self.ledger.per_model(
            "end_user_model", end_user, label, per_model, spent_on, self.spend.unwritten_for
        )
        held = (
            EndUser(budget, limits, by_model or NOTHING)
            if budget is not None or limits is not None or by_model
            else None
        )
        if len(self._end_users) >= MAX_ENTRIES:
            self._end_users.clear()
        self._end_users[end_user] = (held, time.monotonic())
        return held

    async def budgeted(self, limit: int) -> list[Budgeted]:
        """The keys, teams and users with a max_budget, and their spend (for /metrics)."""
        from seance.gateway.store.budgets import budgeted

        return await budgeted(self.engine(), self.spend.unwritten_for, limit)

    def forget(self) -> None:
        """After a change through the management API: read everything again."""
        self.keys.forget()
        self._end_users.clear()

    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = self.database.engine()
        return self._engine

    def prepare(self, master_key: str | None = None) -> None:
        """Migrate before serving (and before forking workers): a database that cannot be used
        stops the start with one clear line. `master_key`: its requests logged before they were
        logged under MASTER_KEY_ALIAS (under the key's SHA-256) are renamed to it.

        In a child process: Alembic, its migration scripts and what they import stay there instead
        of in the process that serves (they were 14 MB of a worker's RSS: 89 MB at the first
        request against 75 MB without them, and inherited by every forked worker)."""
        read, write = os.pipe()
        sys.stdout.flush()  # or the child would write what is buffered a second time
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            code = 0
            try:
                asyncio.run(self._prepare(master_key))
            except BaseException as exc:  # anything, so the parent gets its one line and not a hang
                message = str(exc) if isinstance(exc, StoreError) else f"the migration failed: {reason_of(exc)}"
                os.write(write, message.encode())
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)  # no atexit, no inherited cleanups (a test runner's) in the child
        os.close(write)
        with os.fdopen(read, "rb") as pipe:
            message = pipe.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise StoreError(message or f"the migration process ended abnormally (status {status})")

    async def _prepare(self, master_key: str | None) -> None:
        engine = self.database.engine()
        try:
            await migrate(engine)
            if master_key:
                await _rename_master_rows(engine, master_key)
        except Exception as exc:
            raise StoreError(f"the database {self.database.where} cannot be used: {reason_of(exc)}") from None
        finally:
            await engine.dispose()

    async def open(self, *, migrate_first: bool = False) -> None:
        """At the lifespan's start, in each worker."""
        if migrate_first:
            await migrate(self.engine())
        from seance.gateway.store.budgets import reset_loop

        self.spend.start()
        self._tasks.append(asyncio.ensure_future(reset_loop(self.engine, self.ledger, self.keys)))

    async def close(self, deadline: float | None = None) -> None:
        """At the lifespan's end: the spend not yet written is written."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.keys.close()
        await self.spend.close(deadline if deadline is not None else time.monotonic() + 10)
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None


async def _rename_master_rows(engine: AsyncEngine, master_key: str) -> None:
    """The spend log's rows of the master key's requests made before they were logged under LiteLLM's
    alias: under the key's SHA-256, which an unsalted hash of a short key gives away. Renamed once
    (an indexed lookup that finds nothing at every later start), so the master key's spend reads
    as one history under the alias, and rows imported from an older LiteLLM join it."""
    S = tables.spend_logs
    # (the spend hook's own hash of it then, not keys.hash_key: that one passes a 64-hex key through)
    hashed = hashlib.sha256(master_key.encode()).hexdigest()
    async with engine.begin() as db:
        await db.execute(sa.update(S).where(S.c.api_key == hashed).values(api_key=MASTER_KEY_ALIAS))


def reason_of(exc: BaseException) -> str:
    """The driver's message without anything that could hold the URL's password."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
