"""Processes the bench starts: start in their own group, measure from /proc, kill on every exit."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """An expected failure: printed as one line, the run stops."""


class Supervisor:
    """Owns every long-running process; `stop_all` ends each one by its process group."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as out:
            # A new session so Ctrl-C in the terminal reaches only us; we end the group ourselves.
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        _end_group(proc, grace)
        self._procs = [(n, p) for n, p in self._procs if p is not proc]

    def stop_all(self) -> None:
        while self._procs:
            _, proc = self._procs.pop()
            _end_group(proc, 3.0)


def _end_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Children that outlived their leader (uvicorn workers, nginx workers) share its group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """User+system CPU of the tree, including children it has already reaped."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # Fields after the command: state=0 ... utime=11 stime=12 cutime=13 cstime=14.
        ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / _CLOCK_TICKS


SERVERS = ("postgres", "redis-server", "valkey-server")


def servers_cpu_seconds(names: tuple[str, ...] = SERVERS) -> float:
    """User+system CPU of every process of these names on the machine (the databases the
    targets share, with whatever else uses them meanwhile)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        if head.partition("(")[2] in names:
            fields = rest.split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLOCK_TICKS


def wait_until_idle(root: int, timeout: float = 20.0) -> None:
    """Let the server finish work a closed warm-up left behind (abandoned requests), so the
    measured run starts clean and is not charged for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(root)
        time.sleep(0.3)
        if cpu_seconds(root) - before < 0.03:  # under 10 % of a core
            return


def rss_mb(root: int) -> float:
    total_kb = 0
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def ensure_port_free(port: int) -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise BenchError(f"port {port} on 127.0.0.1 is already in use; stop what holds it")


def wait_http_ok(
    url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path, headers: Mapping[str, str]
) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{proc.args!r} exited with {proc.returncode}:\n{tail(log)}")
        request = urllib.request.Request(url, headers=dict(headers))
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise BenchError(f"{url} did not answer 200 within {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return f"(no log at {log})"
    return "\n".join(text.splitlines()[-lines:])
