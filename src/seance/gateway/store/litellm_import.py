"""`seance import-litellm --from postgresql://…`: keys (their hashes), users, teams, organizations,
budgets and end users, with their spend, copied from a LiteLLM proxy's database (the tables of its
Prisma schema: LiteLLM_VerificationToken, LiteLLM_UserTable, LiteLLM_TeamTable,
LiteLLM_OrganizationTable, LiteLLM_BudgetTable, LiteLLM_EndUserTable) into this gateway's store.
Keys are stored by LiteLLM as the SHA-256 hex of the key, as here: they work the moment the gateway
starts. Each row is inserted or replaced by its id, so a second run changes nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from seance.gateway.store import durations, tables
from seance.gateway.store.database import Database

Row = Mapping[str, Any]


@dataclass
class Imported:
    counts: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        return ", ".join(f"{n} {name}" for name, n in self.counts.items())


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


def _json(value: Any, empty: Any) -> Any:
    if value is None:
        return empty
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return empty
    return value


def _list(value: Any) -> list[Any]:
    return list(value) if value else []


def _stamps(row: Row) -> dict[str, Any]:
    now = time.time()
    return {
        "created_at": _epoch(row.get("created_at")) or now,
        "updated_at": _epoch(row.get("updated_at")) or now,
        "created_by": row.get("created_by"),
        "updated_by": row.get("updated_by"),
    }


def _limits(row: Row) -> dict[str, Any]:
    return {
        "max_budget": row.get("max_budget"),
        "soft_budget": row.get("soft_budget"),
        "budget_duration": row.get("budget_duration"),
        "budget_reset_at": _epoch(row.get("budget_reset_at")),
        "tpm_limit": row.get("tpm_limit"),
        "rpm_limit": row.get("rpm_limit"),
        "max_parallel_requests": row.get("max_parallel_requests"),
        "model_max_budget": _json(row.get("model_max_budget"), {}),
    }


def _key(row: Row) -> dict[str, Any]:
    metadata = dict(_json(row.get("metadata"), {}))
    tags = metadata.get("tags") if isinstance(metadata.get("tags"), list) else []
    return {
        "token": row["token"], "key_name": row.get("key_name"), "key_alias": row.get("key_alias"),
        "spend": float(row.get("spend") or 0.0), "expires": _epoch(row.get("expires")),
        "models": _list(row.get("models")), "aliases": _json(row.get("aliases"), {}),
        "config": _json(row.get("config"), {}), "permissions": _json(row.get("permissions"), {}),
        "metadata": metadata, "tags": tags,
        # LiteLLM keeps a key's per-model limits in its metadata
        "model_rpm_limit": metadata.get("model_rpm_limit") or {},
        "model_tpm_limit": metadata.get("model_tpm_limit") or {},
        "model_spend": _json(row.get("model_spend"), {}), "user_id": row.get("user_id"), "team_id": row.get("team_id"),
        "organization_id": row.get("organization_id"), "budget_id": row.get("budget_id"),
        "blocked": row.get("blocked"), "last_active": _epoch(row.get("last_active")),
        "allowed_cache_controls": _list(row.get("allowed_cache_controls")),
        **_limits(row), **_stamps(row),
    }  # fmt: skip


def _user(row: Row) -> dict[str, Any]:
    return {
        "user_id": row["user_id"], "user_alias": row.get("user_alias"), "user_email": row.get("user_email"),
        "user_role": row.get("user_role") or "internal_user", "teams": _list(row.get("teams")),
        "organization_id": row.get("organization_id"), "spend": float(row.get("spend") or 0.0),
        "models": _list(row.get("models")), "metadata": _json(row.get("metadata"), {}),
        "model_spend": _json(row.get("model_spend"), {}), **_limits(row), **_stamps(row),
    }  # fmt: skip


def _team(row: Row) -> dict[str, Any]:
    members = _json(row.get("members_with_roles"), [])
    return {
        "team_id": row["team_id"], "team_alias": row.get("team_alias"), "organization_id": row.get("organization_id"),
        "admins": _list(row.get("admins")), "members": _list(row.get("members")),
        "members_with_roles": members if isinstance(members, list) else [],
        "metadata": _json(row.get("metadata"), {}), "spend": float(row.get("spend") or 0.0),
        "models": _list(row.get("models")), "blocked": bool(row.get("blocked")),
        "model_spend": _json(row.get("model_spend"), {}), "budget_id": None, **_limits(row), **_stamps(row),
    }  # fmt: skip


def _organization(row: Row) -> dict[str, Any]:
    return {
        "organization_id": row["organization_id"], "organization_alias": row.get("organization_alias"),
        "budget_id": row.get("budget_id"), "metadata": _json(row.get("metadata"), {}),
        "models": _list(row.get("models")), "members": [], "spend": float(row.get("spend") or 0.0),
        "model_spend": _json(row.get("model_spend"), {}), **_stamps(row),
    }  # fmt: skip


def _budget(row: Row) -> dict[str, Any]:
    return {"budget_id": row["budget_id"], **_limits(row), **_stamps(row)}


def _end_user(row: Row) -> dict[str, Any]:
    return {
        "user_id": row["user_id"], "alias": row.get("alias"), "spend": float(row.get("spend") or 0.0),
        "allowed_model_region": row.get("allowed_model_region"), "default_model": row.get("default_model"),
        "budget_id": row.get("budget_id"), "blocked": bool(row.get("blocked")), "metadata": {}, **_stamps(row),
    }  # fmt: skip


# LiteLLM's table -> (what it becomes here, how a row is mapped, the name in the report); budgets
# first: the others point to them
SOURCES: list[tuple[str, sa.Table, Callable[[Row], dict[str, Any]], str]] = [
    ("LiteLLM_BudgetTable", tables.budgets, _budget, "budgets"),
    ("LiteLLM_OrganizationTable", tables.organizations, _organization, "organizations"),
    ("LiteLLM_TeamTable", tables.teams, _team, "teams"),
    ("LiteLLM_UserTable", tables.users, _user, "users"),
    ("LiteLLM_VerificationToken", tables.keys, _key, "keys"),
    ("LiteLLM_EndUserTable", tables.end_users, _end_user, "end users"),
]


async def import_litellm(source: Database, target: AsyncEngine) -> Imported:
    """Copy what `source` (a LiteLLM database) holds into `target` (migrated already)."""
    result = Imported()
    engine = source.engine()
    try:
        async with engine.connect() as src:
            present = set(await src.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
            async with target.begin() as db:
                for name, table, mapped, label in SOURCES:
                    if name not in present:
                        if name == "LiteLLM_VerificationToken":
                            raise ValueError(f"{source.where} has no {name} table: is it a LiteLLM proxy's database?")
                        result.counts[label] = 0
                        continue
                    rows = (await src.execute(sa.text(f'SELECT * FROM "{name}"'))).mappings().all()
                    for row in rows:
                        values = mapped(dict(row))
                        _check(name, table, values)
                        await _upsert(db, table, values)
                    result.counts[label] = len(rows)
    finally:
        await engine.dispose()
    return result


def _check(name: str, table: sa.Table, values: dict[str, Any]) -> None:
    """What LiteLLM keeps without a bound (TEXT) that Seance's columns bound, and durations its
    budgets can count: refused before anything is written (the import is one transaction), naming
    the row and the field, rather than the database's error with neither."""
    row = ", ".join(f"{key.name} {str(values.get(key.name))[:16]}" for key in table.primary_key.columns)
    for column, value in values.items():
        kind = table.c[column].type
        if isinstance(value, str) and isinstance(kind, sa.String) and kind.length and len(value) > kind.length:
            raise ValueError(
                f"{name} ({row}): {column} is {len(value)} characters long; Seance keeps at most {kind.length}:"
                " shorten it there, then import again"
            )
        if column == "budget_duration" and value:
            try:
                durations.parse(value, column)
            except ValueError as exc:
                raise ValueError(f"{name} ({row}): {exc}") from None


async def _upsert(db: AsyncConnection, table: sa.Table, values: dict[str, Any]) -> None:
    if db.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    key = [c.name for c in table.primary_key.columns]
    statement = insert(table).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=key, set_={k: v for k, v in values.items() if k not in key}
    )
    await db.execute(statement)
