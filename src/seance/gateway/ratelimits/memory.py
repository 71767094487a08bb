"""Rate-limit counters in this process: one worker's view (with --workers N each counts on its
own, so a limit is effectively N times larger; configure Redis to share it). No await happens
between a check and its count, so the event loop makes each acquire atomic.

An admitted request costs `take` and `release_now`: plain loops over its entries that hand back
the windows themselves ([start, requests, tokens], replaced by a new list when a window ends, so a
window's start never changes), no Verdict made. A refusal goes through `acquire_now`, which says
which entry refused and until when."""

from __future__ import annotations

import time
from collections.abc import Callable

from seance.gateway.ratelimits import GIVE_BACK, SETTLE, WINDOW, Count, Entry, Held, Verdict


class MemoryStore:
    where = "in-process"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.windows: dict[str, list[float]] = {}  # name -> [start, requests, tokens]
        self.in_flight: dict[str, int] = {}
        self._sweep_at = 1024

    async def acquire(self, entries: tuple[Entry, ...], estimate: int) -> Verdict:
        return self.acquire_now(entries, estimate)

    async def close(self) -> None:
        """Nothing is held for anyone else: the counts go with the process."""

    def take(self, entries: tuple[Entry, ...], estimate: int) -> list[list[float]] | None:
        """If no entry is at a limit, count the request in each (+1 request, `estimate` tokens, +1
        in flight where a parallel limit is set) and return their windows, in order, this request
        included. Else None, and nothing is counted."""
        now = self.clock()
        windows, in_flight = self.windows, self.in_flight
        if len(entries) == 1:  # one scope's limits (a key's, usually): the loops below, without lists
            name, rpm, tpm, parallel = entries[0]
            window = windows.get(name)
            if window is None or now - window[0] >= WINDOW:
                window = [now, 0, 0]
            if (rpm is not None and window[1] >= rpm) or (tpm is not None and window[2] >= tpm):
                return None
            if parallel is not None:
                flying = in_flight.get(name, 0)
                if flying >= parallel:
                    return None
                in_flight[name] = flying + 1
            window[1] += 1
            window[2] += estimate
            windows[name] = window
            if len(windows) > self._sweep_at:
                self._sweep(now)
            return [window]
        found: list[list[float]] = []
        for name, rpm, tpm, parallel in entries:  # every entry is checked before any is counted
            window = windows.get(name)
            if window is None or now - window[0] >= WINDOW:
                window = [now, 0, 0]  # a new window, stored only if the request is admitted
            if (
                (rpm is not None and window[1] >= rpm)
                or (tpm is not None and window[2] >= tpm)
                or (parallel is not None and in_flight.get(name, 0) >= parallel)
            ):
                return None
            found.append(window)
        i = 0
        for name, _, _, parallel in entries:
            window = found[i]
            i += 1  # noqa: SIM113  (enumerate would make a tuple per entry)
            window[1] += 1
            window[2] += estimate
            windows[name] = window
            if parallel is not None:
                in_flight[name] = in_flight.get(name, 0) + 1
        if len(windows) > self._sweep_at:
            self._sweep(now)
        return found

    def acquire_now(self, entries: tuple[Entry, ...], estimate: int) -> Verdict:
        """`take`, with its verdict: every count, or which entry refused on which limit."""
        found = self.take(entries, estimate)
        now = self.clock()
        in_flight = self.in_flight
        counts: list[Count] = []
        if found is not None:
            for (name, _, _, parallel), window in zip(entries, found, strict=True):
                flying = in_flight.get(name, 0) if parallel is not None else 0
                counts.append((window[0], int(window[1]), int(window[2]), flying))
            return Verdict(self, True, now, tuple(counts))
        refused_by, limit = -1, ""
        for i, (name, rpm, tpm, parallel) in enumerate(entries):
            window = self.windows.get(name) or [now, 0, 0]
            if now - window[0] >= WINDOW:
                window = [now, 0, 0]
            flying = in_flight.get(name, 0) if parallel is not None else 0
            counts.append((window[0], int(window[1]), int(window[2]), flying))
            if refused_by < 0:
                if rpm is not None and window[1] >= rpm:
                    refused_by, limit = i, "rpm"
                elif tpm is not None and window[2] >= tpm:
                    refused_by, limit = i, "tpm"
                elif parallel is not None and flying >= parallel:
                    refused_by, limit = i, "parallel"
        if refused_by < 0:  # the refusing window ended between the two readings of the clock
            return self.acquire_now(entries, estimate)
        return Verdict(self, False, now, tuple(counts), refused_by, limit)

    def release_now(self, held: Held, used: int, last: int = SETTLE) -> None:
        now = self.clock()
        windows, in_flight = self.windows, self.in_flight
        _, entries, counts, estimate = held
        i = 0
        for name, _, _, parallel in entries:
            window = windows.get(name)
            if window is not None and now - window[0] < WINDOW:
                # the window that holds the estimate: replaced by the real usage; else used now
                window[2] += used - estimate if window[0] == counts[i][0] else used
            elif used:  # the tokens were used now: they count in the window they open
                windows[name] = [now, 0, used]
            i += 1  # noqa: SIM113  (enumerate would make a tuple per entry)
            if parallel is not None:
                left = in_flight.get(name, 0) - 1
                if left > 0:
                    in_flight[name] = left
                else:
                    in_flight.pop(name, None)
        if last != SETTLE:  # the last entry settled as the others above: its tokens taken back out
            window = windows.get(entries[-1][0])
            if window is not None:
                window[2] -= used
                if last == GIVE_BACK and window[0] == counts[-1][0]:
                    window[1] -= 1

    def _sweep(self, now: float) -> None:
        """Forget windows that ended (scopes seen once must not grow the table forever)."""
        for name in [n for n, w in self.windows.items() if now - w[0] >= WINDOW]:
            del self.windows[name]
        self._sweep_at = max(1024, 2 * len(self.windows))
