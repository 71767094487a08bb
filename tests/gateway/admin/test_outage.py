"""PostgreSQL goes away mid-run (a loopback TCP proxy in front of the real server, cut): keys used
before keep working from the cache, a key never seen gets 503 (not 401: it may be valid), spend is
kept and written when the database is back; no 500s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from tests.cuttable_proxy import CuttableProxy
from tests.databases import pg_database
from tests.stack import stack

from seance.gateway.store import tables
from seance.gateway.store.keys import hash_key

__all__ = ["pg_database"]


async def test_postgres_outage(tmp_path: Path, pg_database: str) -> None:
    proxy = CuttableProxy(5432)
    await proxy.start()
    url = pg_database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    async with stack(tmp_path, {"DATABASE_URL": url}, ttl=0.2) as s:
        known = await s.generate(key_alias="known")
        never_used = await s.generate(key_alias="never-used")
        assert (await s.chat(known)).status_code == 200
        await s.store.spend.flush()
        assert (await s.client.get("/health/readiness")).json() == {
            "status": "healthy",
            "db": "connected",
            "cache": None,
        }

        await proxy.cut()
        await asyncio.sleep(0.3)  # past the TTL: the cache tries to reload, and keeps the entry
        statuses = [(await s.chat(known)).status_code for _ in range(5)]
        assert statuses == [200] * 5
        unknown = await s.chat(never_used)
        assert unknown.status_code == 503 and "unavailable" in unknown.json()["error"]["message"]
        assert not await s.store.spend.flush()  # the rows stay
        assert len(s.store.spend.pending) == 5
        ready = await s.client.get("/health/readiness")  # still ready: it serves what it knows
        assert ready.status_code == 200 and ready.json()["db"] == "disconnected"

        proxy.port = proxy.port  # the same port again
        await proxy.start()
        assert await s.store.spend.flush()
        assert (await s.chat(never_used)).status_code == 200
        assert (await s.client.get("/health/readiness")).json()["db"] == "connected"
        await s.store.spend.flush()
        async with s.store.engine().connect() as db:
            rows = (await db.execute(sa.select(sa.func.count()).select_from(tables.spend_logs)
                                     .where(tables.spend_logs.c.api_key == hash_key(known)))).scalar_one()  # fmt: skip
        assert rows == 6
