"""The router's bus over the real Redis on 127.0.0.1:6379 (each test under a prefix of its own):
messages reach every subscriber, a claim goes to one worker, and a Redis that goes away and comes
back is said once each way and caught up with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from seance.gateway.routing import bus as bus_module
from seance.gateway.routing.bus import Bus
from seance.gateway.shared_state import RedisSettings

REDIS = "redis://127.0.0.1:6379/0"


def _bus(prefix: str, url: str = REDIS) -> Bus:
    return Bus.connect(RedisSettings(url, "test"), prefix)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"test-{uuid.uuid4().hex}:"
    yield name
    client = Redis.from_url(REDIS)
    keys = [key async for key in client.scan_iter(match=name + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def _until(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.005)


def _listener(bus: Bus, channel: str) -> tuple[list[bytes], list[int]]:
    heard: list[bytes] = []
    catch_ups: list[int] = []

    async def catch_up() -> None:
        catch_ups.append(1)

    bus.subscribe(channel, heard.append, catch_up)
    return heard, catch_ups


async def test_a_message_reaches_every_subscriber_and_its_key_stays(prefix: str) -> None:
    one, other = _bus(prefix), _bus(prefix)
    heard_one, caught_up_one = _listener(one, "news")
    heard_other, caught_up_other = _listener(other, "news")
    await one.start()
    await other.start()
    try:
        assert caught_up_one == caught_up_other == [1]  # subscribed and caught up before start returns
        await one.publish("news", b"hello", "k", b"v", 10_000)
        await _until(lambda: heard_other == [b"hello"] and heard_one == [b"hello"], 1.0)
        assert await one.read(["k", "missing"]) == [b"v", None]
        assert 0 < await one.client.pttl(prefix + "k") <= 10_000  # Redis forgets it by itself
    finally:
        await one.stop()
        await other.stop()


async def test_a_claim_goes_to_one_worker(prefix: str) -> None:
    buses = [_bus(prefix) for _ in range(3)]
    try:
        got = await asyncio.gather(*(b.claim("round:1", 5_000) for b in buses))
        assert sorted(got) == [False, False, True]
    finally:
        for b in buses:
            await b.stop()


class Relay:
    """A TCP relay in front of the real Redis that can be taken down and brought back."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)
        self.links |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_redis_down_is_said_once_and_what_was_missed_is_caught_up(
    prefix: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bus_module, "RECONNECT", 0.05)
    relay = Relay()
    await relay.up()
    bus = _bus(prefix, f"redis://127.0.0.1:{relay.port}/0")
    seen: list[bytes | None] = []

    async def catch_up() -> None:
        values = await bus.read(["state"])
        seen.append(values[0] if values else None)

    bus.subscribe("news", lambda message: None, catch_up)
    direct = Redis.from_url(REDIS)
    with caplog.at_level(logging.WARNING, logger="seance.gateway"):
        await bus.start()
        assert seen == [None]
        await relay.down()
        await _until(lambda: bus.down)
        assert await bus.claim("round:7", 5_000)  # down: each worker acts for itself
        assert await bus.read(["state"]) is None
        await _wait(bus.publish("news", b"lost", "other", b"x", 5_000))  # neither raises nor hangs
        await direct.set(prefix + "state", b"written meanwhile")  # by a worker that still reaches Redis
        await asyncio.sleep(0.2)  # a few failed reconnects: still said once
        await relay.up()
        await _until(lambda: seen[-1:] == [b"written meanwhile"])
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("shared router state: Redis failed (ConnectionError); each worker keeps its own") == 1
    assert messages.count("shared router state: Redis answers again") == 1
    await bus.stop()
    await direct.aclose()
    await relay.down()


async def _wait(sent: Awaitable[None]) -> None:
    await asyncio.wait_for(sent, 2)
