"""The spend log's writer for a SQLite file: a process of its own, started by `spend.SqliteWriter`
as `python -I sqlite_writer.py FILE TABLE COLUMNS BUSY_TIMEOUT` (a script, so that it imports only the standard
library and orjson, not the gateway).

Why a process and not a thread: a thread binds each statement's values holding the gateway's GIL
and needs the GIL back after every statement; under load each of its waits cost the event loop a
futex wake at each of its turns. Measured at c=64 (one worker, 3 rounds, one run): the thread's
writes took 11-13 us of CPU a row, half of it in the kernel, this process's 6.5-7 us; the event
loop's system time fell from 23-27 to 20-22 us a request, and throughput rose ~7 % (seance-vkey
12,861 / 12,167 / 13,089 req/s with the thread, 13,806 / 13,398 / 13,137 with the process).

Protocol, on stdin and stdout: each write is an 8-byte big-endian length and that many bytes of
JSON, `{"rows": [[...], ...], "totals": [[sql, [[arguments], ...]], ...]}`; the answer is one line,
`ok`, or `error <what went wrong>` (the transaction then rolled back). End of input: exit.
"""

from __future__ import annotations

import itertools
import signal
import sqlite3
import sys
import time
from typing import Any

import orjson

SIZES = (64, 16, 4, 1)  # rows a statement: a few statements a batch, each ~0.3 ms of SQLite's work
# Seconds of rest after each statement. Written in one burst, a 2,000-row flush was ~10 ms of a
# core every ~0.4 s at c=1, and on 2 cores the requests that came meanwhile waited for it: their
# p99 rose by ~1.8 ms. Rested, the same work spreads out (measured in bench/README.md).
PACE = 0.001

# sqlite3 binds int, float and str directly but asks every other value for an adapter first; these
# make None and bool as cheap (callgrind: 30k instructions a row of 7 NULLs without them).
sqlite3.register_adapter(type(None), {}.get)  # type: ignore[arg-type]  # {}.get(None) is None
sqlite3.register_adapter(bool, int)


def inserts(table: str, columns: list[str]) -> dict[int, str]:
    names = ", ".join(f'"{name}"' for name in columns)
    row = "({})".format(", ".join("?" * len(columns)))
    return {size: f'INSERT INTO "{table}" ({names}) VALUES {", ".join([row] * size)}' for size in SIZES}


def write(db: sqlite3.Connection, statements: dict[int, str], rows: list[list[Any]], totals: list[Any]) -> None:
    """The rows, as multi-row INSERTs (largest first), and the totals they add: one transaction."""
    db.execute("BEGIN IMMEDIATE")  # the write lock at once: no upgrade from a read to wait on
    try:
        start = 0
        for size in SIZES:
            while len(rows) - start >= size:
                db.execute(statements[size], tuple(itertools.chain.from_iterable(rows[start : start + size])))
                start += size
                time.sleep(PACE)
        for statement, arguments in totals:
            db.executemany(statement, arguments)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def serve(path: str, table: str, columns: list[str], busy_timeout: float) -> None:
    """`busy_timeout`: seconds a write waits for another's lock (another worker's, a migration)."""
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    statements = inserts(table, columns)
    source, answers = sys.stdin.buffer, sys.stdout.buffer
    while len(head := source.read(8)) == 8:
        frame = source.read(int.from_bytes(head, "big"))
        try:
            batch = orjson.loads(frame)
            write(db, statements, batch["rows"], batch["totals"])
            answers.write(b"ok\n")
        except Exception as exc:  # the gateway keeps the rows and tries again later
            answers.write(f"error {type(exc).__name__}: {exc}".replace("\n", " ").encode() + b"\n")
        answers.flush()
    db.close()


if __name__ == "__main__":
    # The gateway decides when this stops (end of input, after its last write): a Ctrl-C or a
    # SIGTERM sent to the whole process group must not cut the final write short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.argv[1], sys.argv[2], sys.argv[3].split(","), float(sys.argv[4]))
