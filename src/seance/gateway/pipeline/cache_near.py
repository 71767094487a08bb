"""Copies in this process of the Redis entries the response cache read, kept for as long as Redis
promises to say when they change: Redis's server-assisted client-side caching (CLIENT TRACKING).

    the lookup      of a key this process has read or written before (RedisStore._known; a new
                    key, most misses, is a plain GET and costs Redis no tracking): CLIENT CACHING
                    YES + GET on the shared connection (resp.py), which tracks in OPTIN mode:
                    Redis remembers that this connection read the key (the limits' scripts on the
                    same connection are not tracked)
    a hit           kept here; the next lookup of the key in this process answers from it, with no
                    round trip (a request's rate limits still make theirs)
    a change        any client's SET, DEL, UNLINK, FLUSHDB, an expiry or an eviction of a tracked key:
                    Redis sends its name to a connection of ours subscribed to __redis__:invalidate,
                    and the copy is dropped. Our own writes are not sent back (NOLOOP): `forget`
                    drops the copy when we write
    a lost link     either connection closing (Redis restarted, failed over, unreachable; a PING
                    every KEEPALIVE seconds notices a silent one) drops every copy, and lookups go
                    to Redis until tracking is on again on the connection lookups use

A copy also ends when its entry's TTL does (the entry carries its expiry: Entry.until, on the
writer's clock, as its stored_at already is for s-maxage), since Redis says a key expired only once
it deletes it, which may be later. What it gives up: a change made by another replica is seen here
once its invalidation arrives (normally well under a millisecond; never later than the link's loss
is noticed). A lookup's reply is kept only if no invalidation of its key, no write of ours and no
later lookup of it came since it was sent (`pending`): an invalidation can arrive, on its own
connection, before the reply it follows.

A server that refuses CLIENT TRACKING (Redis before 6, some proxies and managed services) or CLIENT
REPLY SKIP: no copies (logged once); every lookup goes to Redis, as before.

Measured (bench/README.md, fifteenth session): with the cache alone in Redis, a hit at c=1 p50
188-199 -> 95-97 us; bench/instructions.py, the issue's seance-all config with the cache in Redis,
a hit 352k -> 329k instructions a request and the GET gone from Redis's side, a miss 584k -> 587k
(--repeat 3). At c=64 throughput did not move: a turn's GETs were already one write and one read.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

from seance.gateway.resp import SKIP_REPLY, Client, ReplyError, Subscription, encode

if TYPE_CHECKING:
    from seance.gateway.pipeline.cache_answers import Entry
    from seance.gateway.resp import _Connection

log = logging.getLogger("seance.gateway")

CHANNEL = "__redis__:invalidate"
# the lookup: CACHING YES applies to the command after it; its own +OK is skipped
LOOKUP = SKIP_REPLY + encode(("CLIENT", "CACHING", "YES")) + b"*2\r\n$3\r\nGET\r\n"
KEEPALIVE = 5.0  # seconds between PINGs on the subscribed connection
RETRY_AFTER = 1.0  # seconds before tracking is asked for again after the link was lost
MAX_BYTES = 8 * 2**20  # the copies' values add up to at most this; then they all go and it starts again
MAX_AGE = 300.0  # seconds a copy lives at most, whatever its entry's TTL (a bound, should all else fail)


class NearCopies:
    """One per event loop and server (`shared`): every RedisStore there writes over the one connection
    (resp.py), and Redis does not tell that connection of its own writes, so they must all see the
    copies one of them drops."""

    def __init__(self, where: str, max_bytes: int = MAX_BYTES) -> None:
        self.where = where  # for messages: the server without credentials
        self.users = 0  # the RedisStores using it: the last to close ends tracking
        self.max_bytes = max_bytes
        self.active = False  # tracking is on for the connection lookups go out on: copies are good
        self.refused = False  # the server cannot track: never asked again
        # key -> (entry, wall-clock time it ends)
        self.copies: dict[str, tuple[Entry, float]] = {}
        self.size = 0
        # key -> the reply of its latest lookup (sent with CACHING YES), until it arrives
        self.pending: dict[str, Any] = {}
        self._subscription: Subscription | None = None
        self._connection: _Connection | None = None  # the one tracking is on for
        self._task: asyncio.Task[None] | None = None
        self._retry_at = 0.0

    def keep(self, key: str, entry: Entry) -> None:
        """A tracked lookup's reply, when it was its key's latest lookup and no invalidation of the
        key and no write of ours came since it was sent (the caller, which found tracking on, took
        it out of `pending`). RedisStore.ask serves it while it has not ended."""
        now = time.time()
        until = min(entry.until, now + MAX_AGE)  # (an entry without its expiry, until 0: not kept)
        size = len(entry.raw or b"")
        if until <= now or size > self.max_bytes:
            return
        if self.size + size > self.max_bytes:
            self.forget_all()
        self._drop(key)
        self.copies[key] = (entry, until)
        self.size += size

    def forget(self, key: str) -> None:
        """The key changed (Redis said so, or we wrote it ourselves, which Redis does not tell us
        of and after which it no longer tracks the key for us): drop its copy, and do not keep what
        lookups in flight read."""
        if key in self.copies:
            self._drop(key)
        self.pending.pop(key, None)

    def forget_all(self) -> None:
        self.copies.clear()
        self.pending.clear()
        self.size = 0

    def _drop(self, key: str) -> None:
        copy = self.copies.pop(key, None)
        if copy is not None:
            self.size -= len(copy[0].raw or b"")

    # --- the link: tracking on, invalidations in -------------------------------------------------

    def start(self, client: Client) -> None:
        """Turn tracking on in the background for the client's connection, if it is not on and may
        be asked for now."""
        if self.refused or (self._task is not None and not self._task.done()) or time.monotonic() < self._retry_at:
            return
        self._task = asyncio.get_running_loop().create_task(self._link(client))

    def _invalidated(self, keys: Any) -> None:
        if keys is None:  # FLUSHDB, FLUSHALL
            self.forget_all()
            return
        for raw in keys:
            self.forget(raw.decode(errors="replace"))

    def _lost(self) -> None:
        """Tracking ended (either connection closed): no copy is good any more."""
        self.active = False
        self.forget_all()
        self._retry_at = time.monotonic() + RETRY_AFTER
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()  # (its keepalive)
        connection, self._connection = self._connection, None
        if connection is not None and self._lost in connection.on_close:
            connection.on_close.remove(self._lost)
        subscription, self._subscription = self._subscription, None
        if subscription is not None and not subscription.closed:
            subscription.fail(ConnectionError("tracking ended"))

    async def _link(self, client: Client) -> None:
        connection = client.connection
        if connection is None:
            return
        try:
            ident, subscription = await client.subscribe(CHANNEL, self._invalidated)
        except ReplyError as exc:  # (an ACL without the channel)
            self._refused(exc)
            return
        except OSError:
            self._retry_at = time.monotonic() + RETRY_AFTER
            return
        self._subscription = subscription
        subscription.on_close.append(self._lost)
        try:
            if connection.skips is None:  # (CLIENT REPLY ON answers OK where SKIP is known)
                connection.skips = (await client.request(encode(("CLIENT", "REPLY", "ON")))) == "OK"
            if not connection.skips:
                raise ReplyError("CLIENT REPLY SKIP is not supported")
            await client.request(encode(("CLIENT", "TRACKING", "OFF")))
            await client.request(encode(("CLIENT", "TRACKING", "ON", "REDIRECT", ident, "OPTIN", "NOLOOP")))
        except ReplyError as exc:
            subscription.on_close.clear()
            subscription.fail(ConnectionError("not tracking"))
            self._refused(exc)
            return
        except OSError:
            self._lost()
            return
        if client.connection is not connection or subscription.closed:
            self._lost()  # the connection changed while tracking was asked for
            return
        connection.on_close.append(self._lost)
        self._connection = connection
        self.active = True
        await self._keepalive(subscription, client.timeout)

    def _refused(self, exc: ReplyError) -> None:
        self.refused = True
        log.info(
            "response cache: Redis at %s does not track keys for this client (%s); every lookup goes to Redis",
            self.where, exc,
        )  # fmt: skip

    async def _keepalive(self, subscription: Subscription, timeout: float) -> None:
        """A PING now and then: a link that died silently fails it (the connection's watchdog), and
        the copies go with it."""
        ping = encode(("PING",))
        while not subscription.closed:
            await asyncio.sleep(KEEPALIVE)
            if subscription.closed:
                return
            try:
                await subscription.send(ping, timeout)
            except (OSError, ReplyError):
                return  # (the connection failed: _lost has run)

    def close(self) -> None:
        """A store using it is done: tracking ends with the last one."""
        self.users -= 1
        if self.users <= 0:
            self._lost()


# per event loop (as the connection is): per server (Client.address), its copies
_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], NearCopies]] = (
    weakref.WeakKeyDictionary()
)


def shared(client: Client, where: str) -> NearCopies:
    """The copies of the entries read from the client's server in this event loop (one more user)."""
    loop = asyncio.get_running_loop()
    by_server = _SHARED.get(loop)
    if by_server is None:
        by_server = _SHARED[loop] = {}
    near = by_server.get(client.address)
    if near is None or near.users <= 0:
        near = by_server[client.address] = NearCopies(where)
    near.users += 1
    return near
