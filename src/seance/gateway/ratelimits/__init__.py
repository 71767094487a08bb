"""Rate-limit counters: what the limits hook (pipeline/limits.py) asks of them, and the two places
they live.

    memory.py    in this process (one worker's view): the default, and the fallback
    shared.py    in Redis/Valkey, one Lua script per request stage, so every worker and replica
                 shares one limit; falls back to memory.py while Redis is unreachable
    leases.py    blocks of requests counted in Redis at once, admitted by the worker itself, when a
                 set of scopes is far from its limits and busy: a script call per block, not two a
                 request

Windows follow LiteLLM's rate limiter (v3): a fixed window of 60 s per scope, opened by the scope's
first request after the previous one ended (not aligned to the clock's minutes). Requests and tokens
are counted in it; parallel requests are a count of what is in flight (no window).

A check is all or nothing: every scope is checked first, and only when none is at its limit is
anything counted (a refused request counts nowhere, unlike LiteLLM, which counts it too).

The records made per request (Entry, Count, Held) are plain tuples, read by unpacking: on this
interpreter a NamedTuple costs ~3k instructions to make and ~0.6k to unpack, a dataclass ~2k to
make, a tuple a few hundred (bench/instructions.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

WINDOW = 60.0  # seconds
# A request still counted as in flight this long after it began is taken to be lost (its worker
# died before releasing it) and no longer counts against max_parallel_requests.
PARALLEL_TTL = 600.0

# One set of counters a request is checked against: (name, rpm, tpm, parallel), a scope — a key, a
# team, …, or one of those for one model group: "key:<hash>", "team:<id>", "key:<hash>/model:<group>"
# — with its limits (None: not limited there).
Entry = tuple[str, int | None, int | None, int | None]

# What a release does with the last of a request's entries, where the limits hook puts the shared
# count of the deployment the request is meant for (counted with the caller's limits, one round
# trip): SETTLE as the others; NO_TOKENS: the request went there but its answer came from another
# try (counted by the router), so its tokens go back to none; GIVE_BACK: the request never went
# there (a cache hit, a refusal after the check), so its request is taken back too.
SETTLE, NO_TOKENS, GIVE_BACK = 0, 1, 2

# An entry's counters after the check, this request included when it was admitted: (start,
# requests, tokens, parallel), `start` the window's start on the store's clock (seconds). memory.py
# gives its windows instead, [start, requests, tokens]: both are read by index, [0] to [2].
Count = tuple[float, int, int, int]
Counts = Sequence[Sequence[float]]


@dataclass(slots=True)
class Verdict:
    store: Counter  # where the request was counted (a Redis store's fallback while Redis is down; a lease)
    admitted: bool
    now: float  # the store's clock when it decided
    counts: tuple[Count, ...]  # one per entry, in order
    refused_by: int = -1  # the entry at its limit (refused)
    limit: str = ""  # "rpm", "tpm" or "parallel"

    def retry_after(self) -> int:
        """Seconds until the refusing limit may admit a request again."""
        if self.limit == "parallel":
            return 1  # no window: a slot frees when a request ends
        start = self.counts[self.refused_by][0]
        return max(1, int(start + WINDOW - self.now + 0.999))


class Counter(Protocol):
    """What counted an admitted request, and settles it when it ends."""

    def release_now(self, held: Held, used: int, last: int = SETTLE) -> None:
        """The request ended: settle its tokens to `used` (in the window that holds the estimate,
        else the current one) and end its in-flight count; `last`: what becomes of the last entry
        (SETTLE: the same). Never waits (Redis's is sent without waiting for its reply): the after
        hook calls it as a plain method."""
        ...


class Store(Counter, Protocol):
    where: str  # for messages: "in-process" or the Redis server without credentials

    async def acquire(self, entries: tuple[Entry, ...], estimate: int) -> Verdict:
        """Check every entry; if none is at a limit, count the request in each: +1 request,
        `estimate` tokens reserved, +1 in flight where a parallel limit is set."""
        ...

    async def close(self) -> None:
        """The process stops: hand back what this process holds (Redis's leases), if anything."""
        ...


# What a request holds after it was admitted, kept on the context until it ends: (store, entries,
# counts, estimate) — where it was counted, in what, each entry's counters then (only their start
# is read later: a window's never changes), the tokens reserved.
Held = tuple[Counter, tuple[Entry, ...], Counts, int]
