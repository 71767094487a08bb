"""Where the response cache keeps its entries: in this process (an LRU bounded in bytes) or in the
shared Redis/Valkey (entries with a TTL, one round trip per lookup).

Both take and give Entries under a string key; expiry is theirs. The local store keeps the Entry
itself (a hit neither parses nor copies); Redis keeps its bytes. Storing never waits: a request's
one round trip is its lookup, and its write is sent behind it without waiting for the reply
(pipelined on the same connection, so a later lookup sees it). The Redis store remembers the
entries it last read or wrote by their bytes: a hit whose value is the same bytes again reuses the
Entry and the answers made of it, as the local store does, instead of parsing it again; and while
Redis tracks the keys it read (cache_near.py), it answers their next lookups from those copies,
with no round trip at all. A Redis that does not answer makes every call a miss (the request goes
on uncached): a WARNING says so once, and the next call after `RETRY_AFTER` seconds tries it again,
so the cache comes back when the server does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from seance.gateway.pipeline import cache_near
from seance.gateway.pipeline.cache_answers import Entry
from seance.gateway.resp import Client, ReplyError, bulk
from seance.gateway.shared_state import SOCKET_TIMEOUT

if TYPE_CHECKING:
    from seance.gateway.shared_state import RedisSettings

log = logging.getLogger("seance.gateway")

Clock = Callable[[], float]
ERRORS = (OSError, ReplyError)  # ConnectionError and TimeoutError are OSErrors


class Store(Protocol):
    max_entry: int  # the largest body worth storing, in bytes

    async def get(self, key: str) -> Entry | None: ...

    def put(self, key: str, entry: Entry, ttl: float) -> None:
        """Store it; never waits (a write that fails is a later miss, nothing more)."""

    # The management API's (admin/cache.py), off the request path:

    async def ping(self) -> dict[str, Any]:
        """What the store answers a health check with (LiteLLM's /cache/ping fields); raises when
        it cannot be reached."""

    async def delete(self, keys: list[str]) -> int:
        """Remove these entries; how many there were."""

    async def flush(self, prefix: str) -> int:
        """Remove every entry whose key starts with `prefix`; how many there were."""


class LocalStore:
    """Least recently used first out once the entries (bodies, keys and their bookkeeping) pass
    `max_bytes`; an entry past its TTL is dropped when it is next looked up (or pushed out)."""

    def __init__(self, max_bytes: int, clock: Clock = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max(1, max_bytes // 16)  # one huge answer must not empty the cache
        self.clock = clock
        self.size = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # each with its `expires`

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> Entry | None:
        return self.find(key)

    def find(self, key: str) -> Entry | None:
        """get, without the coroutine: the cache hook's lookup."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() >= entry.expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry, ttl: float) -> None:
        length = len(entry.body)
        if length > self.max_entry:
            return
        entries = self._entries
        if key in entries:
            self._drop(key)
        entry.expires = self.clock() + ttl
        entries[key] = entry
        self.size += length + len(key) + ENTRY_OVERHEAD  # _footprint, without its call (every miss)
        while self.size > self.max_bytes:
            self._drop(next(iter(entries)))

    def _drop(self, key: str) -> None:
        self.size -= _footprint(key, self._entries.pop(key))

    async def ping(self) -> dict[str, Any]:
        return {"entries": len(self._entries), "bytes": self.size, "max_bytes": self.max_bytes}

    async def delete(self, keys: list[str]) -> int:
        found = [key for key in keys if key in self._entries]
        for key in found:
            self._drop(key)
        return len(found)

    async def flush(self, prefix: str) -> int:
        return await self.delete([key for key in self._entries if key.startswith(prefix)])


# What an entry holds beside its body and key: the Entry, its Usage, the LRU's node (tracemalloc
# over 20,000 entries: ~306 bytes, with a tuple each that is no longer made), and the key's and
# body's own object headers.
# Counting the bodies alone let 64 MB of small answers (the bench's 300 bytes) take ~240 MB.
ENTRY_OVERHEAD = 400


def _footprint(key: str, entry: Entry) -> int:
    return len(entry.body) + len(key) + ENTRY_OVERHEAD


GET = b"*2\r\n$3\r\nGET\r\n"
# SET key value PX ms, in one format (four bulk() calls and a join cost ~8k instructions a write)
SET = b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$2\r\nPX\r\n$%d\r\n%b\r\n"
# Entries remembered (RedisStore._known) while their values add up to at most this; then it starts again
KNOWN_BYTES = 8 * 2**20
PING_KEY = "seance:cache:ping"  # what /cache/ping writes (outside every namespace's entries)
FLUSH_BATCH = 500  # keys a SCAN step asks for, and an UNLINK removes


def _glob(prefix: str) -> str:
    """The prefix as a SCAN pattern that matches it literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix)


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
        self._writing: set[asyncio.Task[None]] = set()
        # key → the Entry last read or written there (its `raw`, the value's bytes): a read that
        # gets the same bytes again is that Entry, answers made included (no parse, no Answer)
        self._known: dict[str, Entry] = {}
        self._known_bytes = 0
        # the entries this process read, kept while Redis tracks them for it (cache_near.py): one
        # set per connection, shared with the other stores of the loop (made with the client)
        self._near = cache_near.NearCopies(redis.where)

    def _redis(self) -> Client:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._client is None:
            if self._client is not None:  # another loop's (tests)
                self._near.close()
            self._client = Client(self.redis.url, SOCKET_TIMEOUT)
            self._loop = loop
            self._near = cache_near.shared(self._client, self.redis.where)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            self._near.close()
            self._client.close()
            self._client = None

    def ask(self, key: str) -> Awaitable[Any] | Entry | None:
        """Send the lookup now, its reply to be awaited by `get(key, asked)`; the entry itself when
        this process keeps a copy of it (cache_near.py); None when it cannot go at once (no
        connection yet, or the server is being left alone): `get` then does it all."""
        near = self._near
        if near.active and (copy := near.copies.get(key)) is not None and time.time() < copy[1]:
            return copy[0]  # (one past its end is replaced by what this lookup reads)
        client = self._redis()
        if not client.connected or (self.down and self.clock() < self._retry_at):
            return None
        near = self._near  # (made with the client)
        if near.active:
            # tracked only when this process has seen the entry (read or written it): a key asked
            # for a second time is likely asked for again; a new one (most misses) costs Redis no
            # tracking, and this process nothing more than this check
            if key in self._known:
                asked = near.pending[key] = client.request(cache_near.LOOKUP + bulk(key))
                return asked
        else:
            near.start(client)
        return client.request(GET + bulk(key))

    async def get(self, key: str, asked: Awaitable[Any] | Entry | None = None) -> Entry | None:
        """The entry under `key`; `asked`: what `ask(key)` gave, earlier (Cache.start)."""
        if asked is None:
            if self.down and self.clock() < self._retry_at:
                return None
            asked = self._redis().request(GET + bulk(key))
        elif type(asked) is Entry:
            return asked
        near = self._near
        try:
            value = await asked  # type: ignore[misc]
        except ERRORS as exc:
            if near.active:
                near.pending.pop(key, None)
            self._failed(exc)
            return None
        if self.down:
            self._answered()
        entry: Entry | None = None
        if type(value) is bytes:
            known = self._known.get(key)
            if known is not None and known.raw == value:
                entry = known
            elif (entry := Entry.decode(value)) is not None:
                self._remember(key, entry, value)
        # kept if this was the key's latest lookup and nothing about the key came since: under load
        # the same key is looked up again before the reply, and only the latest reply is kept
        if near.active and near.pending.get(key) is asked:
            del near.pending[key]
            if entry is not None:
                near.keep(key, entry)
        return entry

    def _remember(self, key: str, entry: Entry, value: bytes) -> None:
        if self._known_bytes + len(value) > KNOWN_BYTES:
            self._known.clear()
            self._known_bytes = 0
            if len(value) > KNOWN_BYTES:
                return
        self._known[key] = entry
        self._known_bytes += len(value)

    def put(self, key: str, entry: Entry, ttl: float) -> None:
        if len(entry.body) > self.max_entry:
            return
        value = entry.encode(time.time() + ttl)
        self._remember(key, entry, value)
        client = self._redis()
        if self._near.active:  # (Redis does not tell the writer of its own writes)
            self._near.forget(key)
        name, ms = key.encode(), b"%d" % max(1, int(ttl * 1000))
        command = SET % (len(name), name, len(value), value, len(ms), ms)
        if client.send_unanswered(command) or self.down:
            return  # sent; or the server failed: lookups try it again, a lost write is only a miss
        # not connected yet (only writes so far: no-cache requests): connect, then send
        task = asyncio.ensure_future(self._set(command))
        self._writing.add(task)  # a reference, or the loop may drop the task before it ends
        task.add_done_callback(self._writing.discard)

    async def _set(self, command: bytes) -> None:
        try:
            await self._redis().request(command)
        except ERRORS as exc:
            self._failed(exc)
            return
        self._answered()

    async def ping(self) -> dict[str, Any]:
        """PING, then a SET of a short-lived key (LiteLLM's check: the server takes writes)."""
        async with self.redis.client() as client:
            await client.ping()
            await client.set(PING_KEY, b"ok", px=10_000)
        return {"ping_response": True, "set_cache_response": "success"}

    async def delete(self, keys: list[str]) -> int:
        self._known.clear()  # (an entry remembered by its bytes must not outlive its deletion)
        self._near.forget_all()  # (Redis's invalidations follow: this process's own view is at once)
        async with self.redis.client() as client:
            return int(await client.delete(*keys)) if keys else 0

    async def flush(self, prefix: str) -> int:
        """SCAN for the prefix and UNLINK what it finds, a batch at a time: never FLUSHALL, which would
        also take the rate limits' counters and whatever else shares the server."""
        self._known.clear()
        self._near.forget_all()
        removed = 0
        async with self.redis.client() as client:
            batch: list[bytes] = []
            async for key in client.scan_iter(match=_glob(prefix) + "*", count=FLUSH_BATCH):
                batch.append(key)
                if len(batch) >= FLUSH_BATCH:
                    removed += int(await client.unlink(*batch))
                    batch.clear()
            if batch:
                removed += int(await client.unlink(*batch))
        return removed

    async def info(self) -> dict[str, Any]:
        """The server's INFO and CLIENT LIST (which managed servers may refuse: -1 clients)."""
        async with self.redis.client() as client:
            info = await client.info()
            try:
                clients: list[Any] = await client.client_list()
                count = len(clients)
            except Exception:
                clients, count = ["CLIENT LIST command not available on this Redis instance"], -1
        return {"num_clients": count, "clients": clients, "info": info}

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
