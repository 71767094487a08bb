"""Deployments that keep failing are skipped for a while, as LiteLLM's router does.

A deployment cools down for `cooldown_time` seconds when it fails more than `allowed_fails` times
within a minute, or at once when it answers 401, 404, 408 or 429 (a wrong key, an unknown model, a
rate limit: the next request would fail the same way). A group's only deployment never cools
down: skipping it would turn a provider's passing trouble into the gateway's own refusals.

The state is in-process (per worker). Every structure is bounded: deployments made for wildcard
names come and go, so the oldest records are dropped past `limit`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

DEFAULT_ALLOWED_FAILS = 3
DEFAULT_COOLDOWN_TIME = 5.0
WINDOW = 60.0
IMMEDIATE = frozenset({401, 404, 408, 429})


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


def _bound(records: dict[str, Any], limit: int) -> None:
    while len(records) > limit:
        del records[next(iter(records))]
