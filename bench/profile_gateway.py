"""`--profile`: py-spy samples the gateway during a measured run and says where its CPU goes."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?):?(?P<line>\d*)\)$")


@dataclass(frozen=True)
class Recording:
    key: str
    proc: subprocess.Popen[bytes]
    raw: Path


def _module_of(path: str) -> str:
    """A short owner for a frame's file: Seance's own module, else the top-level package."""
    path = path.split("site-packages/", 1)[-1]
    if path.startswith("seance/"):
        return path
    return path.split("/", 1)[0].removesuffix(".py")


def summarize(raw: str, top: int = 15) -> str:
    """Self time per function and per module, and inclusive time per Seance function."""
    self_time: Counter[str] = Counter()
    by_module: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        leaf = frames[-1]
        match = _FRAME.match(leaf)
        self_time[leaf] += count
        by_module[_module_of(match.group("file")) if match else leaf] += count
        seen = set()
        for frame in frames:
            m = _FRAME.match(frame)
            if m and m.group("file").startswith("seance/"):
                name = f"{m.group('func')} ({_module_of(m.group('file'))})"
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += count
    if not total:
        return "no samples (the gateway was idle or py-spy could not attach)"

    def block(title: str, counter: Counter[str]) -> list[str]:
        rows = [title]
        rows += [f"  {100 * n / total:5.1f} %  {name}" for name, n in counter.most_common(top)]
        return rows

    # Self time of asyncio's Runner.run is the event loop's own native code (uvloop: epoll, sockets).
    lines = [f"{total} samples of busy threads"]
    lines += block("self time by function:", self_time)
    lines += block("self time by module:", by_module)
    lines += block("inclusive time in Seance functions:", inclusive)
    return "\n".join(lines)


class Profiler:
    def __init__(self, py_spy: Path, out_dir: Path) -> None:
        self._py_spy = py_spy
        self._out = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)

    def start(self, key: str, pid: int, seconds: float) -> Recording:
        raw = self._out / f"{key}.raw.txt"
        argv = [
            str(self._py_spy), "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
            "--rate", "250", "--format", "raw", "--nonblocking", "--subprocesses", "--output", str(raw),
        ]  # fmt: skip
        log = (self._out / f"{key}.py-spy.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        return Recording(key, proc, raw)

    def finish(self, recording: Recording) -> None:
        try:
            recording.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recording.proc.kill()
            recording.proc.wait()
        try:
            text = summarize(recording.raw.read_text())
        except OSError:
            text = f"py-spy wrote nothing; see {self._out / (recording.key + '.py-spy.log')}"
        (self._out / f"{recording.key}.summary.txt").write_text(text + "\n")
        print(f"    profile of {recording.key} (py-spy, {recording.raw}):")
        print("\n".join("    " + line for line in text.splitlines()[:20]), flush=True)
