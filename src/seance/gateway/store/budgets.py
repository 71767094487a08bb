"""Budget periods: a `budget_duration` ("30d", "1mo") sets `budget_reset_at`; once it passes, the
spend of that key, user, team or end user's budget goes back to 0 and the next reset is set. A team's
period is its members' too (their spend inside the team, which max_budget_in_team bounds, goes back
to 0 with the team's, as LiteLLM resets team members with their team). Every replica runs this loop;
each reset is one conditional UPDATE, so it happens once whoever does it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from seance.gateway.store import durations, tables
from seance.gateway.store.keys import KeyCache, Ledger, member_scope

log = logging.getLogger("seance.gateway")

EVERY = 30.0  # seconds between looks

RESETTABLE: list[tuple[str, sa.Table, sa.Column[str]]] = [
    ("key", tables.keys, tables.keys.c.token),
    ("user", tables.users, tables.users.c.user_id),
    ("team", tables.teams, tables.teams.c.team_id),
]


async def reset_loop(engine: Callable[[], AsyncEngine], ledger: Ledger, keys: KeyCache, every: float = EVERY) -> None:
    while True:
        try:
            if await reset_due(engine(), ledger):
                keys.forget()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("budget resets: the database is unavailable (%s); trying again later", type(exc).__name__)
        await asyncio.sleep(every)


async def reset_due(engine: AsyncEngine, ledger: Ledger, now: float | None = None) -> int:
    """Reset every budget whose period ended; returns how many."""
    now = time.time() if now is None else now
    done = 0
    async with engine.begin() as db:
        for kind, table, column in RESETTABLE:
            due = await db.execute(
                sa.select(column, table.c.budget_duration, table.c.budget_reset_at).where(
                    table.c.budget_reset_at.is_not(None), table.c.budget_reset_at <= now
                )
            )
            for ident, duration, reset_at in due.all():
                following = _next_reset(duration, now)
                changed = await db.execute(
                    sa.update(table)
                    .where(column == ident, table.c.budget_reset_at == reset_at)
                    .values(spend=0.0, budget_reset_at=following, updated_at=now)
                )
                if changed.rowcount:
                    ledger.reset(f"{kind}:{ident}")
                    done += 1
                    if kind == "team":
                        await _reset_members(db, ledger, ident, now)
        done += await _reset_shared(db, ledger, now)
    if done:
        log.info("budget resets: %d budget period%s ended, spend set to 0", done, "s" * (done != 1))
    return done


async def _reset_members(db: AsyncConnection, ledger: Ledger, team_id: str, now: float) -> None:
    memberships = tables.team_memberships
    members = await db.execute(
        sa.update(memberships)
        .where(memberships.c.team_id == team_id)
        .values(spend=0.0, updated_at=now)
        .returning(memberships.c.user_id)
    )
    for user_id in members.scalars().all():
        ledger.reset(member_scope(team_id, user_id))


def _next_reset(duration: str | None, now: float) -> float | None:
    """When the period that starts now ends; None for no (or an unreadable) budget_duration."""
    try:
        return durations.after(duration, "budget_duration", now) if duration else None
    except ValueError:
        return None


# a budget row (/budget/new) is shared: its period ending resets the spend of what points to it
SHARING: list[tuple[str, sa.Table, sa.Column[str]]] = [
    ("end_user", tables.end_users, tables.end_users.c.user_id),
    ("org", tables.organizations, tables.organizations.c.organization_id),
]


async def _reset_shared(db: AsyncConnection, ledger: Ledger, now: float) -> int:
    budgets = tables.budgets
    due = await db.execute(
        sa.select(budgets.c.budget_id, budgets.c.budget_duration, budgets.c.budget_reset_at).where(
            budgets.c.budget_reset_at.is_not(None), budgets.c.budget_reset_at <= now
        )
    )
    done = 0
    for budget_id, duration, reset_at in due.all():
        following = _next_reset(duration, now)
        changed = await db.execute(
            sa.update(budgets)
            .where(budgets.c.budget_id == budget_id, budgets.c.budget_reset_at == reset_at)
            .values(budget_reset_at=following, updated_at=now)
        )
        if not changed.rowcount:
            continue  # another replica did it
        for kind, table, column in SHARING:
            ids = (await db.execute(sa.select(column).where(table.c.budget_id == budget_id))).scalars().all()
            if ids:
                await db.execute(sa.update(table).where(column.in_(ids)).values(spend=0.0, updated_at=now))
                for ident in ids:
                    ledger.reset(f"{kind}:{ident}")
                    done += 1
    return done


class Budgeted(NamedTuple):
    """A key, team or user with a max_budget, as /metrics shows it."""

    kind: str  # "key", "team", "user"
    ident: str  # the key's hash, the team's or the user's id
    alias: str | None  # key_alias, team_alias; None for users
    max_budget: float
    spend: float  # as stored, plus what this process has not written yet
    reset_at: float | None  # when its budget period ends (budget_duration)


# the name /metrics shows beside a budgeted key's or team's id (users have none)
ALIAS_OF = {"key": tables.keys.c.key_alias, "team": tables.teams.c.team_alias}


async def budgeted(engine: AsyncEngine, unwritten: Callable[[str], float], limit: int) -> list[Budgeted]:
    """Every key, team and user with a max_budget (at most `limit` of each kind)."""
    found: list[Budgeted] = []
    async with engine.connect() as db:
        for kind, table, column in RESETTABLE:
            alias = ALIAS_OF.get(kind)
            rows = await db.execute(
                sa.select(
                    column, alias if alias is not None else sa.null(), table.c.max_budget, table.c.spend,
                    table.c.budget_reset_at,
                )
                .where(table.c.max_budget.is_not(None))
                .order_by(column)
                .limit(limit)
            )  # fmt: skip
            found += [
                Budgeted(kind, ident, name, float(most), float(spend) + unwritten(f"{kind}:{ident}"), reset_at)
                for ident, name, most, spend, reset_at in rows.all()
            ]
    return found
