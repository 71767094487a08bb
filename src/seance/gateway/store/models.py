"""Models added at run time (/model/new): the rows of `seance_proxy_models`, and what tells a
worker that another one changed them (the rows' count and latest update, one cheap query)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from seance.gateway.store import tables

Version = tuple[int, float]  # (rows, latest updated_at): any write through the API changes it

_table = tables.proxy_models


async def version(engine: Callable[[], AsyncEngine]) -> Version:
    async with engine().connect() as db:
        count, latest = (await db.execute(sa.select(sa.func.count(), sa.func.max(_table.c.updated_at)))).one()
    return int(count), float(latest or 0.0)


async def read_all(engine: Callable[[], AsyncEngine]) -> tuple[Version, list[dict[str, Any]]]:
    """Every row (oldest first: a group's order stays put) and the version they are, read together."""
    async with engine().connect() as db:
        rows = (await db.execute(sa.select(_table).order_by(_table.c.created_at, _table.c.model_id))).mappings()
        found = [_plain(row) for row in rows]
    latest = max((row["updated_at"] for row in found), default=0.0)
    return (len(found), float(latest)), found


async def read_one(engine: Callable[[], AsyncEngine], model_id: str) -> dict[str, Any] | None:
    async with engine().connect() as db:
        row = (await db.execute(sa.select(_table).where(_table.c.model_id == model_id))).mappings().first()
    return None if row is None else _plain(row)


def _plain(row: sa.RowMapping) -> dict[str, Any]:
    # str(k): SQLAlchemy's column names are a str subclass that orjson does not take as a key
    return {str(k): v for k, v in row.items()}
