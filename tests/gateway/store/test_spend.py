from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from seance.gateway.config import load_settings
from seance.gateway.store import find_database, migrate, spend, tables
from seance.gateway.store.keys import Ledger, member_scope
from seance.gateway.store.spend import SpendLog, SpendRow, json_text, write


def _row(row_id: str, **changes: object) -> SpendRow:
    row = SpendRow(
        row_id, "req-1", "acompletion", "ab" * 32, None, None, None, None, None, "m", "m", "dep-1", "openai",
        12, 8, 0, 20, 0.25, 1000.0, 1001.5, "success", 200, False, "[]", "{}",
    )  # fmt: skip
    return row._replace(**changes)


def test_a_row_has_the_columns_of_the_table_in_order() -> None:
    assert SpendRow._fields == tuple(column.name for column in tables.spend_logs.columns)


def test_json_text() -> None:
    assert json_text([]) == "[]" and json_text({}) == "{}"
    assert json_text(["a", "b"]) == '["a","b"]' and json_text({"k": 1}) == '{"k":1}'


async def test_rows_read_back_as_written(tmp_path: Path, db_env: dict[str, str]) -> None:
    """The same rows through SQLite's tuples and PostgreSQL's COPY: NULLs, booleans and the JSON
    columns come back as the objects they were."""
    config = tmp_path / "config.yaml"
    config.write_text("model_list: [{model_name: m, litellm_params: {model: openai/m}}]\n")
    engine = find_database(load_settings(config, db_env, announce=False)).engine()
    rows = [
        _row("01", cache_hit=True, user="u1", request_tags='["a","b"]', metadata='{"run":7}'),
        _row("02", key_alias=None, end_user="e1", status="failure", status_code=502, spend=0.0),
    ]
    try:
        await migrate(engine)
        async with engine.begin() as db:
            await write(db, rows, {})
        async with engine.connect() as db:
            found = (await db.execute(sa.select(tables.spend_logs).order_by(tables.spend_logs.c.row_id))).mappings()
            got = [dict(row) for row in found]
    finally:
        await engine.dispose()
    assert got[0]["cache_hit"] is True and got[1]["cache_hit"] is False
    assert got[0]["request_tags"] == ["a", "b"] and got[0]["metadata"] == {"run": 7}
    assert got[1]["request_tags"] == [] and got[1]["metadata"] == {}
    assert got[0]["user"] == "u1" and got[0]["key_alias"] is None and got[0]["end_user"] is None
    assert (got[1]["end_user"], got[1]["status_code"], got[1]["spend"]) == ("e1", 502, 0.0)


async def test_rows_and_totals_are_one_transaction(tmp_path: Path, db_env: dict[str, str]) -> None:
    """PostgreSQL copies the rows (COPY) inside the transaction of the totals: when anything after
    them fails, they are not written either, and the batch stays to be written again."""
    config = tmp_path / "config.yaml"
    config.write_text("model_list: [{model_name: m, litellm_params: {model: openai/m}}]\n")
    engine = find_database(load_settings(config, db_env, announce=False)).engine()
    row_id = f"atomic-{tmp_path.name}"[-32:]
    try:
        await migrate(engine)
        with pytest.raises(KeyError):
            async with engine.begin() as db:
                await write(db, [_row(row_id)], {"no-such-total:x": 1.0})
        async with engine.connect() as db:
            left = (await db.execute(sa.select(tables.spend_logs.c.row_id).where(
                tables.spend_logs.c.row_id == row_id))).all()  # fmt: skip
    finally:
        await engine.dispose()
    assert left == []


async def test_every_kind_of_total_adds_to_its_row(tmp_path: Path, db_env: dict[str, str]) -> None:
    """The totals' prepared SQL, on both engines: each scope adds to its own row (a key's also
    stamps last_active); an end user exists once they spend; a member scope adds only to that
    membership; twice adds twice."""
    config = tmp_path / "config.yaml"
    config.write_text("model_list: [{model_name: m, litellm_params: {model: openai/m}}]\n")
    engine = find_database(load_settings(config, db_env, announce=False)).engine()
    suffix = tmp_path.name[-12:]
    key, team, user, org, end_user = (f"{kind}-{suffix}" for kind in ("key", "team", "user", "org", "eu"))
    stamps = {"created_at": 1.0, "updated_at": 1.0}
    totals = {
        f"key:{key}": 0.5, f"team:{team}": 0.25, f"user:{user}": 0.125, f"org:{org}": 2.0,
        f"end_user:{end_user}": 1.5, member_scope(team, user): 0.75, member_scope(team, "not-a-member"): 9.0,
    }  # fmt: skip
    try:
        await migrate(engine)
        async with engine.begin() as db:
            await db.execute(sa.insert(tables.keys).values(token=key, **stamps))
            await db.execute(sa.insert(tables.teams).values(team_id=team, **stamps))
            await db.execute(sa.insert(tables.users).values(user_id=user, **stamps))
            await db.execute(sa.insert(tables.organizations).values(organization_id=org, **stamps))
            await db.execute(sa.insert(tables.team_memberships).values(team_id=team, user_id=user, **stamps))
        for _ in range(2):
            async with engine.begin() as db:
                await write(db, [], totals)
        async with engine.connect() as db:

            async def spend_of(table: sa.Table, **where: str) -> list[float]:
                query = sa.select(table.c.spend).where(*(table.c[name] == value for name, value in where.items()))
                return list((await db.execute(query)).scalars())

            got = {
                "key": await spend_of(tables.keys, token=key),
                "team": await spend_of(tables.teams, team_id=team),
                "user": await spend_of(tables.users, user_id=user),
                "org": await spend_of(tables.organizations, organization_id=org),
                "end_user": await spend_of(tables.end_users, user_id=end_user),
                "member": await spend_of(tables.team_memberships, team_id=team),
            }
            last_active = (await db.execute(sa.select(tables.keys.c.last_active).where(
                tables.keys.c.token == key))).scalar()  # fmt: skip
    finally:
        await engine.dispose()
    assert got == {"key": [1.0], "team": [0.5], "user": [0.25], "org": [4.0], "end_user": [3.0], "member": [1.5]}
    assert last_active is not None and last_active > 1.0


def test_the_sqlite_adapters_bind_what_the_driver_bound_before() -> None:
    """The adapters registered for speed (None, bool) change no stored value."""
    import seance.gateway.store.spend  # noqa: F401  (registers them)

    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a, b, c)")
    db.execute("INSERT INTO t VALUES (?, ?, ?)", (None, True, False))
    assert db.execute("SELECT a, typeof(a), b, typeof(b), c FROM t").fetchone() == (None, "null", 1, "integer", 0)


async def test_a_backlog_is_written_in_one_flush_of_one_frame(tmp_path: Path) -> None:
    """Under load a flush's cost is its hand-offs, hardly its rows: a writer that took BATCH rows
    a flush, or handed each statement back and forth, fell behind the requests and the backlog grew
    the RSS. 3 batches' worth go in one flush, one frame to the writer's process and one answer,
    and read back as they were written (the JSON between the two processes loses nothing)."""
    config = tmp_path / "config.yaml"
    config.write_text("model_list: [{model_name: m, litellm_params: {model: openai/m}}]\n")
    engine = find_database(load_settings(config, {"SEANCE_DB": str(tmp_path / "x.db")}, announce=False)).engine()
    n = 3 * spend.BATCH + 17
    try:
        await migrate(engine)
        log = SpendLog(lambda: engine, Ledger())
        odd = _row("f" * 32, cache_hit=True, user="u1", spend=0.1 + 0.2, request_tags='["a"]', end_time=1e9 / 3)
        log.add(odd, ("key:" + "ab" * 32,))
        assert await log.flush()  # the writer's process is started
        writer = log._sqlite
        assert writer is not None and writer._process is not None
        frames: list[int] = []
        real = spend._frame

        async def counted(rows: list[SpendRow], totals: list[spend.Statement]) -> list[bytes]:
            frames.append(len(rows))
            return await real(rows, totals)

        spend._frame = counted  # type: ignore[assignment]
        try:
            for i in range(n):
                log.add(_row(f"{i:032x}"), ("key:" + "ab" * 32,))
            assert await log.flush()
        finally:
            spend._frame = real  # type: ignore[assignment]
        assert log.pending == [] and log.written == n + 1 and frames == [n]
        await log.close()
        assert writer._process is None
        async with engine.connect() as db:
            assert (await db.execute(sa.select(sa.func.count()).select_from(tables.spend_logs))).scalar() == n + 1
            back = (await db.execute(sa.select(tables.spend_logs).where(tables.spend_logs.c.row_id == "f" * 32))).one()
        assert tuple(back) == odd._replace(request_tags=["a"], metadata={})
    finally:
        await engine.dispose()


async def test_the_sqlite_writer_process_failing_keeps_the_rows(tmp_path: Path) -> None:
    """The writer's process killed: the flush fails, the rows wait, and the next flush starts
    another process that writes them. A batch the database refuses (here: a row already there)
    gets an error answer; the process stays, and the rows wait too."""
    config = tmp_path / "config.yaml"
    config.write_text("model_list: [{model_name: m, litellm_params: {model: openai/m}}]\n")
    engine = find_database(load_settings(config, {"SEANCE_DB": str(tmp_path / "x.db")}, announce=False)).engine()
    try:
        await migrate(engine)
        log = SpendLog(lambda: engine, Ledger())
        log.add(_row("01"), ("key:k",))
        assert await log.flush()
        writer = log._sqlite
        assert writer is not None and writer._process is not None
        first = writer._process
        first.kill()
        await first.wait()
        log.add(_row("02"), ("key:k",))
        assert not await log.flush() and [row.row_id for row, _ in log.pending] == ["02"]
        assert await log.flush() and writer._process is not None and writer._process is not first
        log.add(_row("02"), ("key:k",))  # the same row id again: the primary key refuses it
        second = writer._process
        assert not await log.flush() and len(log.pending) == 1 and writer._process is second
        log.pending.clear()
        await log.close()
        assert second.returncode == 0
        async with engine.connect() as db:
            ids = (await db.execute(sa.select(tables.spend_logs.c.row_id).order_by("row_id"))).scalars().all()
        assert ids == ["01", "02"]
    finally:
        await engine.dispose()


async def test_close_lets_a_flush_in_progress_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop during a write: the writer was cancelled, and the rows it had taken from `pending`
    were lost (all of them, when the backlog was one batch)."""
    written: list[SpendRow] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_write(db: object, rows: list[SpendRow], totals: object) -> None:
        started.set()
        await release.wait()
        written.extend(rows)

    class Engine:
        def begin(self) -> contextlib.AbstractAsyncContextManager[None]:
            return contextlib.nullcontext()  # type: ignore[return-value]

    monkeypatch.setattr(spend, "write", slow_write)
    log = SpendLog(lambda: Engine(), Ledger())  # type: ignore[arg-type, return-value]
    log.start()
    for i in range(spend.BATCH):  # a full batch wakes the writer
        log.add(_row(f"{i:032x}"), ("key:k",))
    await asyncio.wait_for(started.wait(), 5)
    closing = asyncio.ensure_future(log.close())
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.wait_for(closing, 5)
    assert len(written) == spend.BATCH and not log.pending


async def test_a_postgresql_copy_hands_the_event_loop_back_between_turns() -> None:
    """The COPY's rows are encoded in C without a pause: 500 of them held the event loop ~1 ms at
    once, and requests at c=1 waited behind it (their p99). Its records come in turns of
    COPY_TURN rows, other callbacks running between two turns."""
    rows = [_row(f"{i:032x}") for i in range(3 * spend.COPY_TURN + 5)]
    seen: list[str] = []

    async def other_work() -> None:
        while len(seen) < len(rows) + 10:
            seen.append("other")
            await asyncio.sleep(0)

    other = asyncio.ensure_future(other_work())
    await asyncio.sleep(0)
    got = []
    async for row in spend._in_turns(rows):
        got.append(row)
        seen.append("row")
    other.cancel()
    assert got == rows
    runs = "".join("r" if event == "row" else "o" for event in seen).strip("o").split("o")
    assert [len(run) for run in runs if run] == [spend.COPY_TURN] * 3 + [5]


async def test_a_postgresql_write_copies_every_row(tmp_path: Path, pg_database: str) -> None:
    """Rows in several COPYs of several turns, one transaction: all of them written, once."""
    config = tmp_path / "config.yaml"
    config.write_text("model_list: [{model_name: m, litellm_params: {model: openai/m}}]\n")
    engine = find_database(load_settings(config, {"DATABASE_URL": pg_database}, announce=False)).engine()
    rows = [_row(f"turns-{tmp_path.name}-{i}"[-32:]) for i in range(2 * spend.COPY_ROWS + 3)]
    ids = [row.row_id for row in rows]
    try:
        await migrate(engine)
        async with engine.begin() as db:
            await write(db, rows, {})
        async with engine.connect() as db:
            found = (await db.execute(sa.select(tables.spend_logs.c.row_id).where(
                tables.spend_logs.c.row_id.in_(ids)))).scalars().all()  # fmt: skip
    finally:
        await engine.dispose()
    assert sorted(found) == sorted(ids)


async def test_a_value_longer_than_its_column_never_holds_the_log_back(
    tmp_path: Path, db_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A client's 300-character x-request-id, or a model name as long, made PostgreSQL refuse the
    flush's COPY again and again: every later row waited behind it, and no spend was written. The
    hook cuts what clients send; a row that is still too long is cut when the database refuses it."""
    from tests.stack import stack

    async with stack(tmp_path, db_env) as s:
        key = await s.generate()
        body = b'{"model": "a", "messages": [{"role": "user", "content": "hi"}]}'
        sent = await s.client.post("/v1/chat/completions", content=body,
                                   headers={"authorization": f"Bearer {key}", "x-request-id": "r" * 300})  # fmt: skip
        assert sent.status_code == 200 and sent.headers["x-request-id"] == "r" * 300  # (echoed whole)
        assert (await s.chat(key, "m" * 300)).status_code == 404
        # NULs, which no PostgreSQL text holds, in what the client names: the end user, the model, tags
        nul = await s.chat(key, "a", user="end\x00user", metadata={"tags": ["t\x00"], "run": "r\x00"})
        assert nul.status_code == 200 and (await s.chat(key, "a\x00")).status_code == 404
        s.store.spend.add(_row("f" * 32, key_alias="k" * 300), ("key:" + "ab" * 32,))
        with caplog.at_level("WARNING", logger="seance.gateway"):
            written = await s.store.spend.flush() or await s.store.spend.flush()
        assert written and not s.store.spend.pending
        async with s.store.engine().connect() as db:
            found = await db.execute(sa.select(tables.spend_logs.c.request_id, tables.spend_logs.c.model,
                                               tables.spend_logs.c.key_alias))  # fmt: skip
            stored = found.all()
        assert ("r" * 128, "a") in [(r, m) for r, m, _ in stored] and "a" in {m for _, m, _ in stored}
        assert any(m == "m" * 256 for _, m, _ in stored)
        (alias,) = [a for _, _, a in stored if a and a.startswith("k")]
        if "DATABASE_URL" in db_env:  # (SQLite keeps the whole value: it has no lengths)
            assert alias == "k" * 256 and "values made to fit their columns" in caplog.text
            assert "unavailable" not in caplog.text  # (it answered: not an outage)


def test_a_row_is_made_to_fit_what_postgresql_takes() -> None:
    row = _row("01", key_alias="k" * 300, end_user="e\x00", request_tags='["t\\u0000"]', metadata='{"a":"\\u0000b"}')
    fitted = spend.fitted(row)
    assert fitted.key_alias == "k" * 256 and fitted.end_user == "e"
    assert fitted.request_tags == '["t"]' and fitted.metadata == '{"a":"b"}'
    assert spend.fitted(_row("02")) == _row("02")
