"""Where the response cache keeps its entries: in this process (an LRU bounded in bytes) or in the
shared Redis/Valkey (entries with a TTL, one round trip per lookup).

Both take and give opaque bytes under a string key; expiry is theirs. A Redis that does not answer
makes every call a miss (the request goes on uncached): a WARNING says so once, and the next call
after `RETRY_AFTER` seconds tries it again, so the cache comes back when the server does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from seance.gateway.resp import Client, ReplyError
from seance.gateway.shared_state import SOCKET_TIMEOUT

if TYPE_CHECKING:
    from seance.gateway.shared_state import RedisSettings

log = logging.getLogger("seance.gateway")

Clock = Callable[[], float]
ERRORS = (OSError, ReplyError)  # ConnectionError and TimeoutError are OSErrors


class Store(Protocol):
    max_entry: int  # the largest value worth storing, in bytes

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...


class LocalStore:
    """Least recently used first out once the values pass `max_bytes`; an entry past its TTL is
    dropped when it is next looked up (or pushed out by newer ones)."""

    def __init__(self, max_bytes: int, clock: Clock = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max(1, max_bytes // 16)  # one huge answer must not empty the cache
        self.clock = clock
        self.size = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if self.clock() >= expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_entry:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self.clock() + ttl, value)
        self.size += len(value)
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.size -= len(value)


class RedisStore:
    RETRY_AFTER = 1.0  # seconds a server that failed is left alone before it is tried again

    def __init__(self, redis: RedisSettings, max_entry: int = 16 * 2**20, clock: Clock = time.monotonic) -> None:
        self.redis = redis
        self.max_entry = max_entry
        self.clock = clock
        self.down = False
        self._retry_at = 0.0
        # Seance's small client (resp.py): redis-py's GET and SET cost 0.2 ms of CPU a request. A
        # connection belongs to the event loop it was made in: one client per loop, made on first
        # use (a forked worker makes its own).
        self._client: Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _redis(self) -> Client:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None:
            self._client = Client(self.redis.url, SOCKET_TIMEOUT)
            self._loop = loop
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def get(self, key: str) -> bytes | None:
        if self.down and self.clock() < self._retry_at:
            return None
        try:
            value = await self._redis().call("GET", key)
        except ERRORS as exc:
            self._failed(exc)
            return None
        self._answered()
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_entry or (self.down and self.clock() < self._retry_at):
            return
        try:
            await self._redis().call("SET", key, value, "PX", max(1, int(ttl * 1000)))
        except ERRORS as exc:
            self._failed(exc)
            return
        self._answered()

    def _failed(self, exc: BaseException) -> None:
        self._retry_at = self.clock() + self.RETRY_AFTER
        if not self.down:
            self.down = True
            # the exception's class only: its text may hold the server's address with credentials
            log.warning(
                "response cache: Redis at %s does not answer (%s); requests go on uncached until it does",
                self.redis.where,
                type(exc).__name__,
            )

    def _answered(self) -> None:
        if self.down:
            self.down = False
            log.warning("response cache: Redis at %s answers again; caching resumed", self.redis.where)
