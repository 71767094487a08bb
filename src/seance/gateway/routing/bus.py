"""The router's state shared by workers and replicas through Redis: one subscription per worker,
so what one worker learns (a deployment cooling down, the outcome of a health-check round) reaches
the others as a message, not at their next poll.

    publish(channel, message, key, value, px)   SET key + PUBLISH in one pipeline: one round trip
    subscribe(channel, heard, catch_up)         heard(message) as messages arrive; catch_up() after
                                                each (re)subscription reads what was missed while
                                                not subscribed (the worker's start, Redis back)
    claim(key, px)                              SET NX PX: True for the one worker that got it

Redis down: every call fails fast (short socket timeouts; one retry of a command, for a pooled
connection Redis closed while idle; none of the subscription: redis-py would resubscribe without a
catch-up), each feature goes on with its worker's own state, one WARNING when Redis goes and one
line when it is back; the subscription is tried again every RECONNECT seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from seance.gateway.shared_state import RedisSettings

PREFIX = "seance:"
RECONNECT = 1.0  # seconds between tries to subscribe again
log = logging.getLogger("seance.gateway")

Heard = Callable[[bytes], None]
CatchUp = Callable[[], Awaitable[None]]


class Bus:
    def __init__(self, client: Redis, listener: Redis, prefix: str = PREFIX) -> None:
        self.client = client  # commands
        self.listener = listener  # the subscription
        self.prefix = prefix  # of every key and channel: tests give each run its own
        self.down = False
        self._heard: dict[bytes, Heard] = {}
        self._catch_ups: list[CatchUp] = []
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._tried = asyncio.Event()  # the first subscription was tried

    @classmethod
    def connect(cls, redis: RedisSettings, prefix: str = PREFIX) -> Bus:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = redis.client(retry=Retry(NoBackoff(), 1))
        return cls(client, redis.client(retry=Retry(NoBackoff(), 0), socket_keepalive=True), prefix)

    def subscribe(self, channel: str, heard: Heard, catch_up: CatchUp) -> None:
        """Before start(): `heard` gets each message of `channel` (it must not raise on a bad one)."""
        self._heard[(self.prefix + channel).encode()] = heard
        self._catch_ups.append(catch_up)

    async def publish(self, channel: str, message: bytes, key: str, value: bytes, px: int) -> None:
        """Stores `value` at `key` for `px` ms (for catch-ups) and tells the subscribers. Awaited
        while Redis answers; sent in the background once it is known down, so a dead Redis does
        not slow the path that publishes (a failure's retry)."""
        sent = self._publish(channel, message, key, value, px)
        if not self.down:
            await sent
            return
        task = asyncio.get_running_loop().create_task(sent)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(self, channel: str, message: bytes, key: str, value: bytes, px: int) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.prefix + key, value, px=max(1, px))
                pipe.publish(self.prefix + channel, message)
                await pipe.execute()
        except Exception as exc:  # redis-py raises its own errors and OSError alike
            self._failed(exc)
        else:
            self._answered()

    async def claim(self, key: str, px: int) -> bool:
        """Whether this worker got `key` (Redis down: it did, each worker acts for itself)."""
        try:
            got = await self.client.set(self.prefix + key, b"1", nx=True, px=max(1, px))
        except Exception as exc:
            self._failed(exc)
            return True
        self._answered()
        return bool(got)

    async def read(self, keys: Sequence[str]) -> list[bytes | None] | None:
        """The values of `keys` in one MGET; None when Redis fails."""
        try:
            values: list[bytes | None] = await self.client.mget([self.prefix + k for k in keys])  # type: ignore[assignment]
        except Exception as exc:
            self._failed(exc)
            return None
        self._answered()
        return values

    async def start(self) -> None:
        """Subscribes; returns once subscribed and caught up (or Redis found down): a worker that
        says it is ready knows the cooldowns in force."""
        if self._heard:
            self._task = asyncio.get_running_loop().create_task(self._listen())
            await self._tried.wait()

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.aclose()
        await self.listener.aclose()

    async def _listen(self) -> None:
        while True:
            pubsub = self.listener.pubsub()
            try:
                await pubsub.subscribe(*self._heard)
                self._answered()
                for catch_up in self._catch_ups:  # subscribed first: nothing falls between the two
                    await catch_up()
                self._tried.set()
                while not self.down:  # a catch-up that failed: subscribe and catch up again
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                    if message is not None and message["type"] == "message":
                        self._heard[message["channel"]](message["data"])
            except Exception as exc:
                self._failed(exc)
                self._tried.set()
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RECONNECT)

    def _failed(self, exc: Exception) -> None:
        if not self.down:
            self.down = True
            log.warning("shared router state: Redis failed (%s); each worker keeps its own", type(exc).__name__)

    def _answered(self) -> None:
        if self.down:
            self.down = False
            log.warning("shared router state: Redis answers again")
