"""Leases: a worker that counts many requests of one set of scopes in Redis asks for a block of them
at once, and admits the block's requests itself; what they used is settled in batches.

Without leases every request costs Redis two script calls (ACQUIRE before, RELEASE after: ~50 µs
of Redis's CPU each on a slow machine, bench/README.md), and two workers x N replicas share that
one Redis. With them:

    ACQUIRE  asked for `want` requests, counts up to that many at once (`grant`): each request with
             the asking request's estimate of tokens and a place in flight. Never more than
             1/LEASE_SHARE of what any limit of the entries has left, and one request, as without
             leases, where that is less than two: near a limit every request is checked in Redis.
    take     a request of the same entries admitted from the lease, in the process: no round trip.
             The lease ends when its requests are taken, its tokens (the grant's estimate) are used,
             its window ends, or LEASE_TTL after it was granted.
    SETTLE_SCRIPT (shared.py)
             every FLUSH_EVERY, one call per lease with something to settle: the tokens its
             ended requests used beyond (or short of) their estimates, their places in flight, and
             once it has ended the requests, tokens and places it did not use.

What this gives up: for at most LEASE_TTL (and FLUSH_EVERY after), Redis counts requests a worker
was granted and has not used yet — a worker may be refused for what another holds, only when
they sum to the limit, which a grant at most 1/LEASE_SHARE of what is left keeps to the last few
requests of a window. Nothing is admitted past a limit that was not before: a leased request was
counted in Redis when its lease was granted. A worker that dies holding a lease leaves its unused
requests counted for the rest of the window and its places until PARALLEL_TTL, like the places
of the requests it had in flight.

`want` grows with the traffic: a set of entries whose last lease (or single request) was all used
within LEASE_TTL asks for twice as many next time, up to MAX_WANT; one whose lease ended with
requests left asks for what it used. A caller sending a request now and then is counted request by
request, exactly as without leases.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from seance.gateway.ratelimits import GIVE_BACK, SETTLE, Verdict

if TYPE_CHECKING:
    from seance.gateway.ratelimits import Held
    from seance.gateway.ratelimits.shared import Commands, SharedStore

LEASE_SHARE = 16  # a grant is at most this fraction of what the tightest limit has left
MAX_WANT = 64  # requests a lease may hold
LEASE_TTL = 1.0  # seconds a lease admits requests after it was granted
FLUSH_EVERY = 0.05  # seconds between the batches of settlements (a lease's requests' tokens, places)


class Lease:
    """Requests of one set of entries counted in Redis at once (ACQUIRE's grant), admitted here one
    by one, and what they and the lease leave to settle. It is the `store` of what its requests
    hold (ratelimits.Held): their release comes back to it."""

    __slots__ = (
        "back", "commands", "counts", "delta", "dirty", "expires", "grant", "granted_at", "left", "requests",
        "store", "timer", "tokens_left", "used",
    )  # fmt: skip

    def __init__(self, store: SharedStore, commands: Commands, reply: Any, estimate: int, expires: float) -> None:
        """`reply`: ACQUIRE's (admitted, with a grant of more than one request)."""
        self.store, self.commands = store, commands
        self.granted_at, counts, grant = reply[3], reply[4], reply[5]
        self.counts, self.grant = counts, grant
        n = len(counts)
        self.left = grant  # requests not taken yet
        self.tokens_left = grant * estimate  # tokens reserved and not taken yet
        self.expires = expires  # the loop's clock: LEASE_TTL after the grant, or the window's end
        # to settle, per entry: requests given back, tokens beyond the reserved, tokens used
        self.requests, self.delta, self.used = [0] * n, [0] * n, [0] * n
        self.back = 0  # places in flight given back (for the entries with a parallel limit)
        self.dirty = False  # in the store's list of leases to settle
        self.timer: asyncio.TimerHandle | None = None

    def take(self, estimate: int, now: float) -> Verdict | None:
        """A request admitted from the lease, counted with `estimate` tokens; None when the lease
        has ended (and it ends now: what it did not use is settled with the next batch)."""
        if self.left <= 0 or now >= self.expires or (self.commands.tokens and self.tokens_left <= 0):
            self.end()
            return None
        self.left -= 1
        self.tokens_left -= estimate
        # what the scopes count with this request: the grant's counts, less what is not taken yet
        left, tokens_left = self.left, self.tokens_left
        counts: Any = tuple([(c[0], c[1] - left, c[2] - tokens_left, c[3], c[4], c[5]) for c in self.counts])
        return Verdict(self, True, self.granted_at, counts)

    def release_now(self, held: Held, used: int, last: int = SETTLE) -> None:
        """A request of the lease ended: its tokens and its place, settled with the next batch."""
        estimate = held[3]
        delta = used - estimate
        requests, deltas, useds = self.requests, self.delta, self.used
        for i in range(len(deltas)):
            deltas[i] += delta
            useds[i] += used
        if last != SETTLE:  # the last entry (a deployment's): its tokens back to none (NO_TOKENS)
            deltas[-1] -= used
            useds[-1] -= used
            if last == GIVE_BACK:  # and its request too
                requests[-1] += 1
        if self.commands.parallel:
            self.back += 1
        self.store.settle_later(self)

    def end(self) -> None:
        """No more requests from this lease: what it did not use goes back with the next batch."""
        if self.commands.lease is self:
            self.commands.lease = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        left, tokens_left = self.left, self.tokens_left
        if left > 0:  # more than the traffic took: the next lease asks for what this one's used
            self.commands.want = max(1, (self.grant - left) // 2)  # (doubled when it is asked for)
        if left <= 0 and tokens_left == 0:
            return
        self.left = self.tokens_left = 0
        requests, deltas = self.requests, self.delta
        for i in range(len(deltas)):
            requests[i] += left
            deltas[i] -= tokens_left
        if self.commands.parallel:
            self.back += left
        self.store.settle_later(self)

    def settlement(self) -> bytes | None:
        """The SETTLE_SCRIPT call of what the lease has to settle now (None: nothing), its counts
        reset."""
        self.dirty = False
        requests, deltas, useds, back = self.requests, self.delta, self.used, self.back
        if not back and not any(requests) and not any(deltas) and not any(useds):
            return None
        n = len(deltas)
        self.requests, self.delta, self.used, self.back = [0] * n, [0] * n, [0] * n, 0
        values = [back]
        for i, count in enumerate(self.counts):
            values += (count[4], requests[i], deltas[i], useds[i])
        return self.commands.settle(self.counts[0][5], values)
