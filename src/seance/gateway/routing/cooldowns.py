"""Deployments that keep failing are skipped for a while, as LiteLLM's router does.

A deployment cools down for `cooldown_time` seconds when it fails more than `allowed_fails` times
within a minute, or at once when it answers 401, 404, 408 or 429 (a wrong key, an unknown model, a
rate limit: the next request would fail the same way). A group's only deployment never cools
down: skipping it would turn a provider's passing trouble into the gateway's own refusals.

The state is in-process (per worker). Every structure is bounded: deployments made for wildcard
names come and go, so the oldest records are dropped past `limit`.

With a shared Redis (shared_state.find_redis), cooldowns are shared by workers and replicas
(`Shared`, over bus.py): a worker that cools a deployment down sends, in one pipeline, `SET
seance:cooldown:<id> <until> PX <cooldown>` and a PUBLISH on `seance:cooldowns`, and awaits it
before its retry: every worker holds a subscription and cools the deployment down as the message
arrives, so once the failed request has its answer, no worker sends another request to that
deployment. The keys are the catch-up: a worker reads them all in one MGET each time it
subscribes (at its start, when Redis is back). The healthy path never waits for Redis. Failure
counts (allowed_fails) stay per worker: only the decision is shared. Redis down: each worker goes
on with its own cooldowns, one WARNING when it goes and one line when it is back.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seance.gateway.routing.bus import Bus

DEFAULT_ALLOWED_FAILS = 3
DEFAULT_COOLDOWN_TIME = 5.0
WINDOW = 60.0
IMMEDIATE = frozenset({401, 404, 408, 429})
KEY = "cooldown:"  # under the bus's prefix: seance:cooldown:<deployment id>
CHANNEL = "cooldowns"
MAX_SECONDS = 86400.0  # of a cooldown heard from the bus


class Cooldowns:
    def __init__(
        self,
        allowed_fails: int | None = None,
        cooldown_time: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        limit: int = 4096,
    ) -> None:
        self.allowed_fails = DEFAULT_ALLOWED_FAILS if allowed_fails is None else allowed_fails
        self.cooldown_time = DEFAULT_COOLDOWN_TIME if cooldown_time is None else cooldown_time
        self.clock = clock
        self.limit = limit
        self._fails: dict[str, deque[float]] = {}
        self._until: dict[str, float] = {}

    def failed(self, deployment_id: str, status: int | None) -> bool:
        """Records a failure; True when the deployment now cools down."""
        if self.cooldown_time <= 0:
            return False
        now = self.clock()
        fails = self._fails.get(deployment_id)
        if fails is None:
            fails = self._fails[deployment_id] = deque(maxlen=self.allowed_fails + 1)
            _bound(self._fails, self.limit)
        fails.append(now)
        while fails and fails[0] < now - WINDOW:
            fails.popleft()
        if status in IMMEDIATE or len(fails) > self.allowed_fails:
            self._until[deployment_id] = now + self.cooldown_time
            _bound(self._until, self.limit)
            fails.clear()
            return True
        return False

    def cool(self, deployment_id: str, seconds: float) -> None:
        """Another worker cooled this deployment down for `seconds` more."""
        until = self.clock() + seconds
        if until > self._until.get(deployment_id, 0.0):
            self._until[deployment_id] = until
            _bound(self._until, self.limit)

    def cooling(self, deployment_id: str) -> bool:
        until = self._until.get(deployment_id)
        if until is None:
            return False
        if until <= self.clock():
            del self._until[deployment_id]
            return False
        return True

    def seconds_left(self, deployment_ids: list[str]) -> float:
        """How long until the first of these deployments is available again."""
        now = self.clock()
        return max(0.0, min((self._until.get(i, now) for i in deployment_ids), default=now) - now)


class Shared:
    """The cooldowns of `local` shared through the bus, for the deployments in `ids` (those of
    groups with more than one deployment: the others never cool down)."""

    def __init__(self, local: Cooldowns, bus: Bus, ids: Sequence[str], wall: Callable[[], float] = time.time) -> None:
        self.local = local
        self.bus = bus
        self.ids = frozenset(ids)
        self.keys = [KEY + i for i in ids]
        self.wall = wall
        bus.subscribe(CHANNEL, self.heard, self.refresh)

    async def announce(self, deployment_id: str) -> None:
        """Tells the other workers (one round trip): they skip it from their next request on."""
        seconds = self.local.cooldown_time
        message = f"{seconds!r} {deployment_id}".encode()
        until = repr(self.wall() + seconds).encode()
        await self.bus.publish(CHANNEL, message, KEY + deployment_id, until, int(seconds * 1000))

    def heard(self, message: bytes) -> None:
        """Another worker's (or this one's own) announce. Seconds rather than a time: the clocks
        of replicas may differ, a message takes a round trip."""
        text, _, deployment_id = message.decode(errors="replace").partition(" ")
        if deployment_id not in self.ids:
            return
        try:
            seconds = float(text)
        except ValueError:
            return
        if 0 < seconds <= MAX_SECONDS:  # not nan, not forever
            self.local.cool(deployment_id, seconds)

    async def refresh(self) -> None:
        """The catch-up after (re)subscribing: every shared cooldown in one MGET."""
        values = await self.bus.read(self.keys)
        if values is None:
            return
        now = self.wall()
        for key, value in zip(self.keys, values, strict=True):
            if value is not None:
                try:
                    left = float(value) - now
                except ValueError:
                    continue
                if left > 0:
                    self.local.cool(key.removeprefix(KEY), left)


def _bound(records: dict[str, Any], limit: int) -> None:
    while len(records) > limit:
        del records[next(iter(records))]
