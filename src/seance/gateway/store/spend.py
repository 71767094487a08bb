"""The spend log: one row per request, appended in memory on the request path and written in
batches by a background task; totals added to the key, user, team, team member, organization and
end user in the same transaction as the rows, so a batch counts once or not at all.

A batch that cannot be written (the database is down) stays in memory and is tried again, with
back-off, up to MAX_PENDING rows; budgets meanwhile count it (the Ledger). `close` writes what is
left: the lifespan's shutdown (SIGTERM) calls it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import marshal
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from seance.gateway.store import model_budgets, tables
from seance.gateway.store.database import CONNECT_TIMEOUT, refused_value
from seance.gateway.store.keys import Ledger, member_ids
from seance.gateway.store.sqlite_writer import CHUNK, insert_statements, inserts

log = logging.getLogger("seance.gateway")

BATCH = 2_000  # this many rows waiting wakes the writer (before the interval is up)
MAX_BATCH = 20_000  # rows one write takes at most
INTERVAL = 1.0  # seconds between writes, unless general_settings.proxy_batch_write_at says otherwise
MAX_PENDING = 200_000  # rows kept while the database is down; beyond, the oldest are dropped
MAX_BACKOFF = 10.0
COPY_TURN = 64
# A flush's rows go to PostgreSQL in COPYs of COPY_ROWS, COPY_REST seconds apart, in its one
# transaction. In one COPY, 2,000 rows reached the server at once (asyncpg buffers 512 KB) and its
# work was one burst on the other core: seance-vkey-pg's c=1 p99 was 2.5-3.0 ms (0.8 ms with no
# flush in the run). 256 rows a COPY: 0.96 ms; 64: 0.60-0.93 ms, but at c=64 the writer, 64 rows
# each 2 ms, fell behind the requests (RSS 120 MB and rising). 256 keeps up (~50k rows/s at most).
COPY_ROWS = 256
COPY_REST = 0.002

# scope prefix -> the table and key column whose `spend` a row adds to
TOTALS: dict[str, tuple[sa.Table, sa.Column[Any]]] = {
    "key": (tables.keys, tables.keys.c.token),
    "team": (tables.teams, tables.teams.c.team_id),
    "user": (tables.users, tables.users.c.user_id),
    "org": (tables.organizations, tables.organizations.c.organization_id),
}


class SpendOptions(NamedTuple):
    """general_settings.proxy_batch_write_at (seconds between writes) and disable_spend_logs."""

    interval: float = INTERVAL
    rows: bool = True


class SpendRow(NamedTuple):
    """One row of seance_spend_logs, its columns in the table's order (a test keeps them equal):
    SQLite takes it as it is, with no per-row conversion. The two JSON columns come as JSON text
    (`json_text`): the request path writes them once, the flush does not."""

    row_id: str
    request_id: str
    call_type: str
    api_key: str
    key_alias: str | None
    user: str | None
    team_id: str | None
    organization_id: str | None
    end_user: str | None
    model: str | None
    model_group: str | None
    model_id: str | None
    custom_llm_provider: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    total_tokens: int
    spend: float
    start_time: float
    end_time: float
    status: str
    status_code: int
    cache_hit: bool
    request_tags: str
    metadata: str


def json_text(value: list[Any] | dict[str, Any]) -> str:
    """A JSON column's text (the empty ones, nearly every row's, without a call)."""
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return orjson.dumps(value).decode()


Batch = list[tuple[SpendRow, tuple[str, ...]]]


class SpendLog:
    def __init__(
        self, engine: Callable[[], AsyncEngine], ledger: Ledger, interval: float = INTERVAL, rows: bool = True
    ) -> None:
        """`interval`: seconds between writes (general_settings.proxy_batch_write_at); `rows`: False
        writes only the totals (general_settings.disable_spend_logs: budgets work, no per-request rows)."""
        self._engine = engine
        self.ledger = ledger
        self.interval = interval
        self.rows = rows
        self.pending: Batch = []
        self.unwritten: dict[str, float] = {}
        self.written = 0  # rows, since start (tests and logs)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.failing = False
        self._sqlite: SqliteWriter | None = None  # a SQLite file's writer, made at the first flush
        self._sqlite_checked = False

    def add(self, row: SpendRow, scopes: tuple[str, ...]) -> None:
        """Called by the spend hook after each request: no I/O."""
        cost = row.spend
        if cost:
            unwritten = self.unwritten
            for scope in scopes:
                unwritten[scope] = unwritten.get(scope, 0.0) + cost
                self.ledger.add(scope, cost)
        self.pending.append((row, scopes))
        if len(self.pending) >= BATCH:
            self._wake.set()
        if len(self.pending) > MAX_PENDING:
            dropped = self.pending[: len(self.pending) - MAX_PENDING]
            del self.pending[: len(dropped)]
            self._settle(_totals(dropped))
            log.error("spend log: %d rows dropped: the database has not taken any for too long", len(dropped))

    def unwritten_for(self, scope: str) -> float:
        return self.unwritten.get(scope, 0.0)

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = False
        self._task = asyncio.ensure_future(self._run())

    async def close(self, deadline: float | None = None) -> None:
        """Stop the writer and write what is left (until `deadline`, a monotonic time)."""
        if self._task is not None:
            # Not cancelled: a flush cancelled after it took its rows from `pending` lost them (all
            # of them, when the backlog was one batch), and one cancelled while the database
            # committed cannot tell whether to put them back. The writer stops between flushes.
            self._stopping = True
            self._wake.set()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while self.pending:
            if not await self.flush() or (deadline is not None and time.monotonic() > deadline):
                break
        if self.pending:
            log.error("spend log: %d rows could not be written before the stop", len(self.pending))
        if self._sqlite is not None:
            await self._sqlite.close()
            self._sqlite, self._sqlite_checked = None, False

    async def _run(self) -> None:
        backoff = self.interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff)
            self._wake.clear()
            ok = await self.flush()
            # On again at once only for a backlog (a batch's worth came in meanwhile, or the database
            # was away). Draining until nothing was pending wrote continuously under steady load: each
            # write took the few rows that came during the one before, a transaction for every ~4
            # requests at c=1, which cost the event loop ~160 us of CPU a request.
            while ok and len(self.pending) >= BATCH and not self._stopping:
                ok = await self.flush()
            backoff = self.interval if ok else min(max(MAX_BACKOFF, self.interval), backoff * 2)

    async def flush(self) -> bool:
        """Write one batch; False when the database did not take it (it stays pending)."""
        batch = self.pending[:MAX_BATCH]
        if not batch:
            return True
        del self.pending[: len(batch)]
        totals = _totals(batch)
        rows = [row for row, _ in batch] if self.rows else []
        try:
            sqlite_writer = self._sqlite_writer()
            if sqlite_writer is not None:
                await sqlite_writer.write(rows, totals)
            else:
                async with self._engine().begin() as db:
                    await write(db, rows, totals)
        except Exception as exc:  # the database's errors are many; each means "later"
            if refused_value(exc):
                # a value longer than its column, or with a NUL (PostgreSQL; SQLite keeps both): made
                # to fit, or the same batch would fail at every flush and hold every later row behind it
                log.warning("spend log: the database refused a value of a row (%s); values made to fit their columns",
                            type(exc).__name__)  # fmt: skip
                self.pending[:0] = [(fitted(row), scopes) for row, scopes in batch]
                return False  # (the database answered: not an outage)
            self.pending[:0] = batch
            if not self.failing:
                log.warning("spend log: the database is unavailable (%s); %d rows kept to write later",
                            type(exc).__name__, len(self.pending))  # fmt: skip
            self.failing = True
            return False
        if self.failing:
            log.warning("spend log: the database is back; writing the rows kept")
            self.failing = False
        self._settle(totals)
        self.written += len(batch)
        return True

    def _sqlite_writer(self) -> SqliteWriter | None:
        if not self._sqlite_checked:
            self._sqlite_checked = True
            url = getattr(self._engine(), "url", None)
            file = url.database if url is not None and url.get_backend_name() == "sqlite" else None
            if file and file != ":memory:":
                self._sqlite = SqliteWriter(file)
        return self._sqlite

    def _settle(self, totals: Mapping[str, float]) -> None:
        """What was written (or dropped) is no longer unwritten: a batch's totals, scope by scope."""
        unwritten = self.unwritten
        for scope, cost in totals.items():
            left = unwritten.get(scope, 0.0) - cost
            if left > 1e-12:
                unwritten[scope] = left
            else:
                unwritten.pop(scope, None)


def _totals(batch: Batch) -> dict[str, float]:
    totals: dict[str, float] = {}
    for row, scopes in batch:
        cost = row.spend
        if cost:
            for scope in scopes:
                totals[scope] = totals.get(scope, 0.0) + cost
    return totals


async def write(db: AsyncConnection, rows: list[SpendRow], totals: Mapping[str, float]) -> None:
    """The rows and the totals they add, in the caller's transaction.

    Both engines take prepared SQL with plain tuples, not SQLAlchemy statements: SQLAlchemy's
    executemany spent 30 us a row of 26 columns on parameter processing, and each total's UPDATE
    held the event loop ~0.4 ms (statement, greenlet and result handling)."""
    totals_sql = _totals_sql(totals, time.time(), _TOTALS_SQL[db.dialect.name])
    if db.dialect.driver == "asyncpg":
        await _write_postgres(db, rows, totals_sql)
        return
    for statement, values in insert_statements(_SQLITE_INSERTS, rows):
        await db.exec_driver_sql(statement, values)
    for statement, arguments in totals_sql:
        await db.exec_driver_sql(statement, arguments)


_COLUMNS = [column.name for column in tables.spend_logs.columns]
# (in-memory SQLite only: SqliteWriter writes files)
_SQLITE_INSERTS = inserts(tables.spend_logs.name, _COLUMNS)


async def _write_postgres(db: AsyncConnection, rows: list[SpendRow], totals_sql: list[Statement]) -> None:
    """PostgreSQL, on asyncpg's own connection inside the caller's transaction: the rows in one
    binary COPY at a time (COPY_ROWS, then a rest), encoded in C, and each kind of total in one
    prepared executemany.

    Measured with a probe timing the event loop's gaps around a 500-row flush (2 cores, idle
    database): through SQLAlchemy, the COPY held the loop for ~1 ms at once and each total ~0.4 ms,
    ~2.5 ms of gaps over 0.1 ms a flush that a request at c=1 could wait behind. Here the COPY
    hands the loop back every COPY_TURN rows (its records come from an async generator)."""
    raw = await db.get_raw_connection()
    connection = raw.driver_connection
    assert connection is not None
    # SQLAlchemy's adapter begins a transaction at its first statement, and none has run: asyncpg's
    # own (begun and committed here; the caller's commit then has nothing to do). One begun
    # through SQLAlchemy cost a statement's worth of loop time more.
    transaction = contextlib.nullcontext() if connection.is_in_transaction() else connection.transaction()
    async with transaction:
        for start in range(0, len(rows), COPY_ROWS):
            if start:
                await asyncio.sleep(COPY_REST)
            records = _in_turns(rows[start : start + COPY_ROWS])
            await connection.copy_records_to_table(tables.spend_logs.name, records=records, columns=_COLUMNS)
        for statement, arguments in totals_sql:
            await connection.executemany(statement, arguments)


async def _in_turns(rows: list[SpendRow]) -> AsyncIterator[tuple[Any, ...]]:
    """The rows, with a turn for the event loop's other callbacks every COPY_TURN of them.

    As plain tuples: asyncpg reads a record's values by index, and a tuple subclass's index goes
    through its `__getitem__` slot wrapper (~750 instructions a value, 23k a row, callgrind) where a
    tuple's is a C macro."""
    for start in range(0, len(rows), COPY_TURN):
        for row in rows[start : start + COPY_TURN]:
            yield tuple(row)
        await asyncio.sleep(0)


Statement = tuple[str, list[tuple[Any, ...]]]  # SQL, and the arguments of each execution
# (index, length) of each text column with a length; the indexes of the JSON columns (as text)
_LENGTHS = [(i, c.type.length) for i, c in enumerate(tables.spend_logs.columns)
            if isinstance(c.type, sa.String) and c.type.length]  # fmt: skip
_JSON = [i for i, c in enumerate(tables.spend_logs.columns) if isinstance(c.type, sa.JSON)]


def fitted(row: SpendRow) -> SpendRow:
    """The row as PostgreSQL takes any row: each text value cut to its column's length and without
    NUL characters (no PostgreSQL text holds one: a client's `user` or model name can), the JSON
    values without them either."""
    values: list[Any] = list(row)
    for i, length in _LENGTHS:
        value = values[i]
        if isinstance(value, str):
            values[i] = value.replace("\x00", "")[:length]
    for i in _JSON:
        if "\\u0000" in values[i]:
            values[i] = json_text(_without_nul(orjson.loads(values[i])))
    return SpendRow(*values)


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


class SqliteWriter:
    """The spend log's writes to a SQLite file, done by a process of its own (`sqlite_writer.py`,
    which says why not a thread) with its own connection (WAL, as the engine's): each flush is one
    frame to it and one line back, the whole transaction done there.

    Through the engine (aiosqlite) every statement of a flush was a round trip between its thread
    and the event loop, and under load each return waited behind the requests' callbacks: at c=64
    (12,500 requests a second, one worker) a flush took up to 919 ms and 11,602 rows, the rows
    waiting meanwhile held ~23 MB more RSS, and the loop paid for every hop."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._process: asyncio.subprocess.Process | None = None

    async def write(self, rows: list[SpendRow], totals: Mapping[str, float]) -> None:
        totals_sql = _totals_sql(totals, time.time(), _TOTALS_SQL["sqlite"])
        process = self._process or await self._start()
        assert process.stdin is not None and process.stdout is not None
        frame = await _frame(rows, totals_sql)
        try:
            process.stdin.writelines(frame)
            await process.stdin.drain()
            answer = await process.stdout.readline()
        except BaseException:  # (a broken pipe, or cancelled mid-frame: the next frame would not parse)
            await self._stop(process)
            raise
        if answer != b"ok\n":
            if not answer.startswith(b"error "):  # it exited: the next write starts another
                await self._stop(process)
            raise SpendWriteError(answer.decode(errors="replace").strip() or "the SQLite writer exited")

    async def close(self) -> None:
        if self._process is not None:
            await self._stop(self._process)

    async def _start(self) -> asyncio.subprocess.Process:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", WRITER_SCRIPT, self.path, tables.spend_logs.name, ",".join(_COLUMNS),
            str(CONNECT_TIMEOUT),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C in a terminal is the gateway's to handle, not the writer's
        )  # fmt: skip
        return self._process

    async def _stop(self, process: asyncio.subprocess.Process) -> None:
        """End of input, and it exits (after the write it is doing, if any)."""
        self._process = None
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()


class SpendWriteError(Exception):
    """The SQLite writer's process did not write a batch (its answer says why)."""


WRITER_SCRIPT = str(Path(__file__).with_name("sqlite_writer.py"))
STOP_TIMEOUT = 2 * CONNECT_TIMEOUT  # a write in progress may wait its busy timeout for the lock


async def _frame(rows: list[SpendRow], totals_sql: list[Statement]) -> list[bytes]:
    """A write for the writer process (`sqlite_writer.py` has the protocol): the totals, the rows in
    chunks, an empty message. A turn for the event loop between chunks (~15 us each): with 1,024
    rows between turns the p99 of requests at c=1 was 1.14-1.28 ms, with one chunk 0.69-0.75 ms
    (3 rounds each; bench/README.md)."""
    parts = _message(marshal.dumps(totals_sql))
    for start in range(0, len(rows), CHUNK):
        if start:
            await asyncio.sleep(0)
        parts += _message(marshal.dumps(list(map(tuple, rows[start : start + CHUNK]))))  # (marshal: plain tuples)
    parts.append(bytes(4))
    return parts


def _message(body: bytes) -> list[bytes]:
    return [len(body).to_bytes(4, "big"), body]


def _totals_sql(totals: Mapping[str, float], now: float, statements: Mapping[str, str]) -> list[Statement]:
    """Each kind of total as one executemany, kinds and scopes in sorted order: every replica takes
    the rows' locks in one order, so two of them never deadlock. A member's spend inside a team
    changes nothing when they are not (or no longer) one."""
    by_kind: dict[str, list[tuple[Any, ...]]] = {}
    for scope, cost in sorted(totals.items()):
        kind, _, ident = scope.partition(":")
        if kind in model_budgets.COLUMNS:  # spend on one model: summed from the rows when a key is read
            continue
        if kind == "key":
            arguments: tuple[Any, ...] = (cost, now, ident)
        elif kind == "member":
            arguments = (cost, *member_ids(ident))
        elif kind == "end_user":
            arguments = (ident, cost, now)
        else:
            arguments = (cost, ident)
        by_kind.setdefault(kind, []).append(arguments)
    return [(statements[kind], arguments) for kind, arguments in by_kind.items()]


def _total_statements(placeholders: tuple[str, str, str]) -> dict[str, str]:
    """The statements of the totals with one engine's placeholders ($1 or ?)."""
    one, two, three = placeholders
    statements = {
        kind: f'UPDATE "{table.name}" SET spend = spend + {one} WHERE "{column.name}" = {two}'
        for kind, (table, column) in TOTALS.items()
    }
    statements["key"] = (
        f'UPDATE "{tables.keys.name}" SET spend = spend + {one}, last_active = {two} WHERE token = {three}'
    )
    memberships, end_users = tables.team_memberships.name, tables.end_users.name
    statements["member"] = (
        f'UPDATE "{memberships}" SET spend = spend + {one} WHERE team_id = {two} AND user_id = {three}'
    )
    statements["end_user"] = (  # end users exist once they spend (as in LiteLLM): insert or add
        f'INSERT INTO "{end_users}" (user_id, spend, blocked, metadata, created_at, updated_at) '
        f"VALUES ({one}, {two}, false, '{{}}', {three}, {three}) ON CONFLICT (user_id) "
        f'DO UPDATE SET spend = "{end_users}".spend + excluded.spend, updated_at = excluded.updated_at'
    )
    return statements


_TOTALS_SQL = {"postgresql": _total_statements(("$1", "$2", "$3")), "sqlite": _total_statements(("?1", "?2", "?3"))}
