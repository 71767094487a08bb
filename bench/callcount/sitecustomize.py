"""Loaded by the gateway's interpreter when bench/instructions.py --calls puts this folder first on
PYTHONPATH (Python imports a `sitecustomize` at start): counts the Python functions called, and
the C functions Python code calls, between SIGUSR1 and SIGUSR2, then writes them as JSON to
$SEANCE_CALLCOUNT. The main thread only: it runs the event loop, the request path. Nothing here
runs without that variable."""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
from types import FrameType
from typing import Any

OUT = os.environ.get("SEANCE_CALLCOUNT")


def _install(out: str) -> None:
    counts: collections.Counter[str] = collections.Counter()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":  # a function entered, or a coroutine or generator resumed
            code = frame.f_code
            where = code.co_filename.rpartition("site-packages/")[2].rpartition("/src/")[2]
            counts[f"{where}:{code.co_firstlineno}:{code.co_name}"] += 1
        elif event == "c_call":
            counts["C:" + getattr(arg, "__qualname__", repr(arg))] += 1

    def start(signum: int, frame: FrameType | None) -> None:
        counts.clear()
        sys.setprofile(profile)

    def stop(signum: int, frame: FrameType | None) -> None:
        sys.setprofile(None)
        partial = out + ".partial"
        with open(partial, "w") as file:
            json.dump(counts, file)
        os.replace(partial, out)  # whole or absent: the reader waits for it

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)


if OUT:
    _install(OUT)
