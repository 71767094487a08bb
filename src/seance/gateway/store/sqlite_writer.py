"""The spend log's writer for a SQLite file: a process of its own, started by `spend.SqliteWriter`
as `python -I -S sqlite_writer.py FILE TABLE COLUMNS BUSY_TIMEOUT` (a script of the standard
library alone: it imports nothing of the gateway's, nor anything from site-packages, ~10 MB RSS).

Why a process and not a thread: a thread binds each statement's values holding the gateway's GIL
and needs the GIL back after every statement; under load each of its waits cost the event loop a
futex wake at each of its turns. Measured at c=64 (one worker, one run, rounds alternated): the
thread's writes took 11-13 us of CPU a row, half of it in the kernel, this process's ~5.5 us; the
event loop's system time fell from ~23 to ~20 us a request, and seance-vkey's throughput rose from
~77 % to ~83 % of seance-nodb's (bench/README.md).

Protocol, on stdin and stdout. A write is messages, each a 4-byte big-endian length and that many
bytes of `marshal` (the gateway runs this with its own interpreter, so the format is the same):
the totals (`[(sql, [(arguments), ...]), ...]`), then the rows in chunks (`[(column, ...), ...]`,
CHUNK rows a message), then an empty message. The answer is one line: `ok`, or `error <what went
wrong>` (the transaction then rolled back). End of input: exit.
"""

from __future__ import annotations

import itertools
import marshal
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO

CHUNK = 64  # rows a message (the gateway's spend.py sends them so)
SIZES = (CHUNK, 16, 4, 1)  # rows a statement: a chunk is one, ~0.3 ms of SQLite's work
# Seconds of rest after each statement. Written in one burst, a 2,000-row flush was ~10 ms of a
# core every ~0.4 s at c=1, and on 2 cores the requests that came meanwhile waited for it: their
# p99 rose by ~1.8 ms. Rested, the same work spreads out (measured in bench/README.md).
PACE = 0.001
CACHE_KB = 256  # SQLite's page cache: the rows are appended, at the right edge of each B-tree

# sqlite3 binds int, float and str directly but asks every other value for an adapter first: two
# failed attribute lookups on a type, each raising a formatted AttributeError (callgrind: 30k
# instructions for a row's 7 NULLs). Registered, the lookup finds these C callables and binds what
# it bound before: NULL, 0/1. In this process, and in the gateway's too (spend.py imports this).
sqlite3.register_adapter(type(None), {}.get)  # type: ignore[arg-type]  # {}.get(None) is None
sqlite3.register_adapter(bool, int)


def inserts(table: str, columns: list[str]) -> dict[int, str]:
    names = ", ".join(f'"{name}"' for name in columns)
    row = "({})".format(", ".join("?" * len(columns)))
    return {size: f'INSERT INTO "{table}" ({names}) VALUES {", ".join([row] * size)}' for size in SIZES}


def insert_statements(
    statements: dict[int, str], rows: Sequence[Sequence[Any]]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The rows as `inserts`' statements, largest first, and their values: sqlite3's executemany
    steps once a row, a few multi-row statements are faster (the gateway's in-memory store too)."""
    start = 0
    for size in SIZES:
        while len(rows) - start >= size:
            yield statements[size], tuple(itertools.chain.from_iterable(rows[start : start + size]))
            start += size


def write(db: sqlite3.Connection, statements: dict[int, str], totals: list[Any], chunks: Iterable[list[Any]]) -> None:
    """The rows, chunk by chunk, as multi-row INSERTs (largest first), and the totals they add: one
    transaction. `chunks` may parse each chunk as it is reached (`serve`)."""
    db.execute("BEGIN IMMEDIATE")  # the write lock at once: no upgrade from a read to wait on
    try:
        for rows in chunks:
            for statement, values in insert_statements(statements, rows):
                db.execute(statement, values)
            time.sleep(PACE)
        for statement, arguments in totals:
            db.executemany(statement, arguments)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def message(source: BinaryIO) -> bytes | None:
    """The next message, None at the end of input (its length first, 4 bytes)."""
    head = source.read(4)
    if len(head) < 4:
        return None
    return source.read(int.from_bytes(head, "big"))


def chunk_messages(source: BinaryIO) -> Iterator[bytes]:
    """A write's chunks, up to the empty message that ends it."""
    while (body := message(source)) != b"":
        if body is None:
            raise EOFError("the gateway's input ended inside a write")
        yield body


def serve(path: str, table: str, columns: list[str], busy_timeout: float) -> None:
    """`busy_timeout`: seconds a write waits for another's lock (another worker's, a migration)."""
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA cache_size=-{CACHE_KB}")
    statements = inserts(table, columns)
    source = sys.stdin.buffer
    answers: BinaryIO | None = sys.stdout.buffer  # None once the gateway is gone
    while (totals := message(source)) is not None:
        rest = chunk_messages(source)
        try:
            # each chunk read and loaded when its turn comes: a write of 2,000 rows read at once was
            # a burst of a core (requests at c=1 waited behind it) and all of it in memory
            write(db, statements, marshal.loads(totals), map(marshal.loads, rest))
            answer = b"ok\n"
        except Exception as exc:  # the gateway keeps the rows and tries again later
            answer = f"error {type(exc).__name__}: {exc}".replace("\n", " ").encode() + b"\n"
            for _ in rest:  # the rest of this write
                pass
        if answers is None:
            continue
        try:
            answers.write(answer)
            answers.flush()
        except BrokenPipeError:
            # the worker is gone (its shutdown's grace period ended during this write): nobody to
            # answer, but the writes its input still holds are spend, written all the same. No
            # traceback in the gateway's log; stdout pointed at nothing, or exiting flushes it again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            answers = None
    db.close()


if __name__ == "__main__":
    # The gateway decides when this stops (end of input, after its last write): a Ctrl-C or a
    # SIGTERM sent to the whole process group must not cut the final write short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(sys.argv[1], sys.argv[2], sys.argv[3].split(","), float(sys.argv[4]))
