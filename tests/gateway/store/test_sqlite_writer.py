from __future__ import annotations

import marshal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from seance.gateway.store import spend, sqlite_writer
from seance.gateway.store.sqlite_writer import CHUNK, inserts, write

COLUMNS = ["row_id", "n", "flag", "note"]


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE t (row_id TEXT PRIMARY KEY, n INTEGER, flag BOOLEAN, note TEXT)")
    db.execute("CREATE TABLE totals (id TEXT PRIMARY KEY, spend FLOAT)")
    db.execute("INSERT INTO totals VALUES ('k', 1.0)")
    return db


def test_a_batch_is_a_few_multi_row_statements_and_its_totals_in_one_transaction(tmp_path: Path) -> None:
    """A statement a row stepped SQLite 2,000 times a flush; the largest size first, then the rest."""
    db = _db(tmp_path / "w.db")
    seen: list[str] = []
    db.set_trace_callback(seen.append)
    n = 3 * CHUNK + 5
    rows = [[f"{i:04d}", i, i % 2 == 0, None] for i in range(n)]
    chunks = [rows[start : start + CHUNK] for start in range(0, n, CHUNK)]
    write(db, inserts("t", COLUMNS), [["UPDATE totals SET spend = spend + ?1 WHERE id = ?2", [[0.5, "k"]]]], chunks)
    statements = [s.split(" ", 1)[0] for s in seen]
    assert statements == ["BEGIN"] + ["INSERT"] * 5 + ["UPDATE", "COMMIT"]  # 64, 64, 64, 4, 1
    assert db.execute("SELECT count(*), sum(flag), max(note) FROM t").fetchone() == (n, (n + 1) // 2, None)
    assert db.execute("SELECT spend FROM totals").fetchone() == (1.5,)


def test_a_failed_batch_leaves_nothing(tmp_path: Path) -> None:
    db = _db(tmp_path / "w.db")
    statements = inserts("t", COLUMNS)
    with pytest.raises(sqlite3.IntegrityError):
        write(db, statements, [], [[["a", 1, True, None]], [["a", 2, False, None]]])
    assert not db.in_transaction and db.execute("SELECT count(*) FROM t").fetchone() == (0,)


def message(value: object) -> bytes:
    body = marshal.dumps(value)
    return len(body).to_bytes(4, "big") + body


def frame(*chunks: list[tuple[object, ...]]) -> bytes:
    return message([]) + b"".join(map(message, chunks)) + bytes(4)


def writer(path: Path) -> list[str]:
    return [sys.executable, "-I", "-S", spend.WRITER_SCRIPT, str(path), "t", ",".join(COLUMNS), "5"]


def test_the_process_answers_each_frame_and_stops_at_the_end_of_input(tmp_path: Path) -> None:
    """What the gateway's SqliteWriter sends and reads, against the script itself: `ok`, an error
    line that says what the database refused (the rows stay the gateway's to keep), and exit 0
    once its input ends."""
    path = tmp_path / "w.db"
    _db(path).close()
    process = subprocess.run(
        writer(path),
        input=(
            frame([("a", 1, True, "x")])
            + frame([("a", 2, False, None)], [("c", 4, False, None)])  # refused in its first chunk
            + frame([("b", 3, False, None)])
            + message([])  # a write the input ends inside: rolled back
            + message([("d", 5, False, None)])
        ),
        capture_output=True, timeout=30,
    )  # fmt: skip
    answers = process.stdout.decode().splitlines()
    assert process.returncode == 0 and answers[0] == "ok" and answers[2] == "ok"
    assert answers[3] == "error EOFError: the gateway's input ended inside a write" and len(answers) == 4
    assert answers[1].startswith("error IntegrityError: UNIQUE constraint failed: t.row_id")
    assert sqlite3.connect(path).execute("SELECT row_id, n, flag, note FROM t ORDER BY 1").fetchall() == [
        ("a", 1, 1, "x"),
        ("b", 3, 0, None),
    ]


def test_a_gateway_gone_before_the_answer_leaves_no_traceback(tmp_path: Path) -> None:
    """A worker whose shutdown ran out of time exits while its writer is in a write: the answer
    meets a closed pipe. The writes it was sent are made all the same, and the writer ends quietly
    (its stderr is the gateway's log)."""
    path = tmp_path / "w.db"
    _db(path).close()
    process = subprocess.Popen(writer(path), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    process.stdout.close()  # nobody reads the answer
    process.stdin.write(frame([("a", 1, True, "x")]) + frame([("b", 2, False, None)]))
    process.stdin.close()
    assert process.wait(timeout=30) == 0
    assert process.stderr.read() == b""
    assert sqlite3.connect(path).execute("SELECT row_id FROM t ORDER BY 1").fetchall() == [("a",), ("b",)]


def test_the_script_imports_only_the_standard_library() -> None:
    """It runs as a script with `-I -S`: neither the gateway's modules nor site-packages are on its
    path, so what it imports must be the standard library's."""
    source = Path(sqlite_writer.__file__).read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names)
