"""Rate-limit counters in this process: one worker's view (with --workers N each counts on its
own, so a limit is effectively N times larger; configure Redis to share it). No await happens
between a check and its count, so the event loop makes each acquire atomic."""

from __future__ import annotations

import time
from collections.abc import Callable

from seance.gateway.ratelimits import WINDOW, Count, Entry, Held, Verdict


class MemoryStore:
    where = "in-process"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.windows: dict[str, list[float]] = {}  # name -> [start, requests, tokens]
        self.in_flight: dict[str, int] = {}
        self._sweep_at = 1024

    async def acquire(self, entries: tuple[Entry, ...], estimate: int, request_id: str) -> Verdict:
        return self.acquire_now(entries, estimate)

    def acquire_now(self, entries: tuple[Entry, ...], estimate: int) -> Verdict:
        now = self.clock()
        windows, in_flight = self.windows, self.in_flight
        seen: list[tuple[list[float], int]] = []
        refused_by, limit = -1, ""
        for i, entry in enumerate(entries):
            window = windows.get(entry.name)
            if window is None or now - window[0] >= WINDOW:
                window = [now, 0, 0]  # a new window, stored only if the request is admitted
            parallel = in_flight.get(entry.name, 0) if entry.parallel is not None else 0
            seen.append((window, parallel))
            if refused_by < 0:
                if entry.rpm is not None and window[1] >= entry.rpm:
                    refused_by, limit = i, "rpm"
                elif entry.tpm is not None and window[2] >= entry.tpm:
                    refused_by, limit = i, "tpm"
                elif entry.parallel is not None and parallel >= entry.parallel:
                    refused_by, limit = i, "parallel"
        if refused_by >= 0:
            counts = tuple(Count(w[0], int(w[1]), int(w[2]), p) for w, p in seen)
            return Verdict(self, False, now, counts, refused_by, limit)
        admitted: list[Count] = []
        for entry, (window, parallel) in zip(entries, seen, strict=True):
            window[1] += 1
            window[2] += estimate
            windows[entry.name] = window
            if entry.parallel is not None:
                parallel += 1
                in_flight[entry.name] = parallel
            admitted.append(Count(window[0], int(window[1]), int(window[2]), parallel))
        if len(windows) > self._sweep_at:
            self._sweep(now)
        return Verdict(self, True, now, tuple(admitted))

    async def release(self, held: Held, used: int) -> None:
        self.release_now(held, used)

    def release_now(self, held: Held, used: int) -> None:
        now = self.clock()
        for entry, start in zip(held.entries, held.starts, strict=True):
            window = self.windows.get(entry.name)
            if window is not None and now - window[0] < WINDOW:
                window[2] += used - held.estimate if window[0] == start else used
            elif used:  # the tokens were used now: they count in the window they open
                self.windows[entry.name] = [now, 0, used]
            if entry.parallel is not None:
                left = self.in_flight.get(entry.name, 0) - 1
                if left > 0:
                    self.in_flight[entry.name] = left
                else:
                    self.in_flight.pop(entry.name, None)

    def _sweep(self, now: float) -> None:
        """Forget windows that ended (scopes seen once must not grow the table forever)."""
        for name in [n for n, w in self.windows.items() if now - w[0] >= WINDOW]:
            del self.windows[name]
        self._sweep_at = max(1024, 2 * len(self.windows))
