"""Deployments that keep failing are skipped for a while, as LiteLLM's router does.

A deployment cools down for `cooldown_time` seconds when it fails more than `allowed_fails` times
within a minute, or at once when it answers 401, 404, 408 or 429 (a wrong key, an unknown model, a
rate limit: the next request would fail the same way). A group's only deployment never cools
down: skipping it would turn a provider's passing trouble into the gateway's own refusals.

The state is in-process (per worker). Every structure is bounded: deployments made for wildcard
names come and go, so the oldest records are dropped past `limit`.

With a shared Redis (shared_state.find_redis), cooldowns are shared by workers and replicas
(`Shared`): a worker that cools a deployment down writes one key (`SET seance:cooldown:<id>
<until> PX <cooldown>`, not awaited by the request), and every worker reads the keys of the
deployments that can cool down in one MGET, in the background, every REFRESH seconds. The healthy
path never waits for Redis; another worker stops sending to a cooled-down deployment at most
REFRESH seconds (plus a round trip) after the failure. Failure counts (allowed_fails) stay per
worker: only the decision is shared. Redis down: each worker goes on with its own cooldowns, one
WARNING when it goes and one line when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_ALLOWED_FAILS = 3
DEFAULT_COOLDOWN_TIME = 5.0
WINDOW = 60.0
IMMEDIATE = frozenset({401, 404, 408, 429})
REFRESH = 1.0  # seconds between reads of the shared cooldowns
KEY = "seance:cooldown:"
log = logging.getLogger("seance.gateway")


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
    """The cooldowns of `local` shared through Redis, for the deployments in `ids` (those of
    groups with more than one deployment: the others never cool down)."""

    def __init__(
        self, local: Cooldowns, client: Redis, ids: Sequence[str], wall: Callable[[], float] = time.time
    ) -> None:
        self.local = local
        self.client = client
        self.ids = list(ids)
        self.keys = [KEY + i for i in self.ids]
        self.wall = wall
        self.down = False
        self._writes: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def announce(self, deployment_id: str) -> None:
        """Tells the other workers, without making the request wait."""
        seconds = self.local.cooldown_time
        task = asyncio.get_running_loop().create_task(self._write(deployment_id, seconds))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, deployment_id: str, seconds: float) -> None:
        try:
            await self.client.set(KEY + deployment_id, repr(self.wall() + seconds), px=max(1, int(seconds * 1000)))
        except Exception as exc:
            self._failed(exc)

    async def refresh(self) -> None:
        """Reads every shared cooldown into the local state (one round trip)."""
        try:
            values = await self.client.mget(self.keys)
        except Exception as exc:
            self._failed(exc)
            return
        if self.down:
            self.down = False
            log.warning("shared cooldowns: Redis answers again")
        now = self.wall()
        for deployment_id, value in zip(self.ids, values, strict=True):
            if value is not None:
                try:
                    left = float(value) - now
                except ValueError:
                    continue
                if left > 0:
                    self.local.cool(deployment_id, left)

    def _failed(self, exc: Exception) -> None:
        if not self.down:
            self.down = True
            log.warning("shared cooldowns: Redis failed (%s); each worker keeps its own", type(exc).__name__)

    async def _run(self, interval: float) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(interval)

    def start(self, interval: float = REFRESH) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(interval))

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._writes) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()


def _bound(records: dict[str, Any], limit: int) -> None:
    while len(records) > limit:
        del records[next(iter(records))]
