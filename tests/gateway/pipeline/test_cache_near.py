"""Copies of Redis entries kept in this process while Redis tracks them (cache_near.py), on the real
Redis at 127.0.0.1:6379: a hit read once answers from memory after, and stops as soon as any
client changes, deletes or expires the entry, or the link that tells of changes is lost."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import redis
from tests.cuttable_proxy import CuttableProxy
from tests.gateway.asgi_client import arequest, deployment, make_app
from tests.gateway.cached_gateway import space

from seance.gateway.pipeline import cache_near
from seance.gateway.pipeline.cache import Cache, CacheConfig
from seance.gateway.pipeline.cache_answers import Entry
from seance.gateway.pipeline.cache_stores import RedisStore
from seance.gateway.shared_state import RedisSettings
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

__all__ = ["space"]  # (a fixture)

REDIS_URL = "redis://127.0.0.1:6379/0"


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.002)


@pytest.fixture
async def store() -> AsyncIterator[RedisStore]:
    store = RedisStore(RedisSettings(REDIS_URL, "test"))
    yield store
    await store.close()


@pytest.fixture
def direct() -> AsyncIterator[redis.Redis]:
    """Another client of the same server: a replica's writes, an operator's DEL or FLUSH."""
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def stored(body: bytes, ttl: float = 60.0) -> bytes:
    return Entry(time.time(), None, body).encode(time.time() + ttl)


async def tracking(store: RedisStore, key: str) -> Entry | None:
    """Look the key up until tracking is on and a copy is kept (the first lookups turn it on)."""
    found = None
    for _ in range(200):
        found = await store.get(key, store.ask(key))
        if key in store._near.copies:
            return found
        await asyncio.sleep(0.005)
    raise AssertionError("no copy was kept")


async def test_a_hit_read_once_answers_from_memory_until_another_client_changes_it(
    store: RedisStore, direct: redis.Redis, space: str
) -> None:
    key = f"{space}:a"
    direct.set(key, stored(b"first"), px=60_000)
    first = await tracking(store, key)
    assert first is not None and first.body == b"first"
    asked = store.ask(key)
    assert asked is first  # no round trip: the entry itself
    assert (await store.get(key, asked)) is first
    unseen = store.ask(f"{space}:never")  # a key this process has not seen: not tracked
    assert f"{space}:never" not in store._near.pending and (await store.get(f"{space}:never", unseen)) is None
    direct.set(key, stored(b"second"), px=60_000)  # a replica stores a new answer
    await until(lambda: key not in store._near.copies)
    again = await store.get(key, store.ask(key))
    assert again is not None and again.body == b"second"


@pytest.mark.parametrize("change", ["delete", "unlink", "expire", "flushed here"])
async def test_a_deleted_or_expired_entry_is_no_longer_served(
    store: RedisStore, direct: redis.Redis, space: str, change: str
) -> None:
    key = f"{space}:b"
    direct.set(key, stored(b"kept"), px=60_000)
    await tracking(store, key)
    if change == "delete":
        direct.delete(key)
    elif change == "unlink":
        direct.unlink(key)
    elif change == "expire":
        direct.pexpire(key, 20)
        await asyncio.sleep(0.05)
        direct.get(key)  # (Redis deletes an expired key when it is next read, or in its sweep)
    else:
        await store.delete([key])  # the management API's /cache/delete: gone here at once
        assert key not in store._near.copies
    await until(lambda: key not in store._near.copies)
    assert (await store.get(key, store.ask(key))) is None


async def test_a_copy_ends_with_its_entry_s_ttl_even_before_redis_says_so(store: RedisStore, space: str) -> None:
    key = f"{space}:c"
    store._redis()
    direct = redis.Redis.from_url(REDIS_URL)
    try:
        direct.set(key, stored(b"short", ttl=0.3), px=60_000)  # the value says 0.3 s; Redis keeps it longer
        await tracking(store, key)
        await asyncio.sleep(0.35)
        past = store.ask(key)  # past the entry's own expiry: not served from the copy
        assert past is not None and not isinstance(past, Entry)
        assert (await store.get(key, past)) is not None
        direct.set(key, Entry(time.time(), None, b"older").encode(), px=60_000)  # no expiry in it (0)
        await until(lambda: key not in store._near.copies)
        for _ in range(3):
            found = await store.get(key, store.ask(key))
            assert found is not None and found.body == b"older"
        assert key not in store._near.copies  # an entry whose end is not known is not kept
    finally:
        direct.close()


async def test_our_own_write_replaces_the_copy_at_once(store: RedisStore, direct: redis.Redis, space: str) -> None:
    key = f"{space}:d"
    direct.set(key, stored(b"old"), px=60_000)
    await tracking(store, key)
    store.put(key, Entry(time.time(), None, b"new"), 60)  # a no-cache request refreshed it
    assert key not in store._near.copies
    found = await store.get(key, store.ask(key))
    assert found is not None and found.body == b"new"
    # and it is tracked again from that read: another client's change still reaches us
    await tracking(store, key)
    direct.set(key, stored(b"newer"), px=60_000)
    await until(lambda: key not in store._near.copies)


async def test_a_reply_is_not_kept_when_its_key_changed_while_it_was_on_its_way(store: RedisStore, space: str) -> None:
    key = f"{space}:e"
    store.put(key, Entry(time.time(), None, b"v"), 60)
    await tracking(store, key)
    store._near.forget(key)
    asked = store.ask(key)
    assert asked is not None and not isinstance(asked, Entry)
    store._near._invalidated([key.encode()])  # its invalidation came first, on the other connection
    found = await store.get(key, asked)
    assert found is not None and key not in store._near.copies
    # a second lookup sent before the first's reply: only the latest one's reply is kept
    first, second = store.ask(key), store.ask(key)
    await store.get(key, first)
    assert key not in store._near.copies
    await store.get(key, second)
    assert key in store._near.copies


async def test_a_lost_link_drops_every_copy_and_tracking_comes_back(
    store: RedisStore, direct: redis.Redis, space: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_near, "RETRY_AFTER", 0.0)
    keys = [f"{space}:f{n}" for n in range(3)]
    for key in keys:
        direct.set(key, stored(b"x"), px=60_000)
        await tracking(store, key)
    near = store._near
    subscription = near._subscription
    assert subscription is not None
    # the connection that hears of changes is killed (a failover, a proxy's idle timeout)
    for client in direct.client_list():
        if "subscribe" in client["cmd"] or client["sub"] == "1":
            direct.client_kill_filter(_id=client["id"])
    await until(lambda: not near.active)
    assert not near.copies
    found = await store.get(keys[0], store.ask(keys[0]))  # from Redis; tracking asked for again
    assert found is not None
    await tracking(store, keys[0])
    # now the connection lookups go out on: tracking ends with it, and so do the copies
    connection = store._redis().connection
    assert connection is not None
    connection.fail(ConnectionError("cut"))
    assert not near.active and not near.copies


@pytest.mark.parametrize("denied", ["-client|tracking", "-subscribe"])
async def test_a_server_that_cannot_track_means_every_lookup_goes_to_redis(
    direct: redis.Redis, space: str, caplog: pytest.LogCaptureFixture, denied: str
) -> None:
    # a user without CLIENT TRACKING or SUBSCRIBE (as some managed services and proxies have it)
    user = "seance-test-" + os.urandom(4).hex()
    direct.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["*"], channels=["*"], commands=["+@all", denied])
    store = RedisStore(RedisSettings(f"redis://{user}:pw@127.0.0.1:6379/0", "test"))
    key = f"{space}:g"
    try:
        direct.set(key, stored(b"x"), px=60_000)
        with caplog.at_level(logging.INFO, "seance.gateway"):
            for _ in range(20):
                found = await store.get(key, store.ask(key))
                assert found is not None and found.body == b"x"
                await asyncio.sleep(0.005)
        assert store._near.refused and not store._near.copies
        said = [r.getMessage() for r in caplog.records if "does not track" in r.getMessage()]
        assert len(said) == 1 and "pw" not in said[0]
    finally:
        await store.close()
        direct.acl_deluser(user)


async def test_the_copies_are_bounded_in_bytes(store: RedisStore, direct: redis.Redis, space: str) -> None:
    store._redis()  # (the copies are made with the client)
    store._near.max_bytes = 3 * len(stored(b"y" * 100)) + 10
    keys = [f"{space}:h{n}" for n in range(5)]
    for key in keys:
        direct.set(key, stored(b"y" * 100), px=60_000)
    for key in keys:
        await tracking(store, key)
        assert store._near.size <= store._near.max_bytes
    assert 1 <= len(store._near.copies) <= 3


async def test_two_replicas_through_the_gateway_see_each_others_fresh_answers(tmp_path: Path, space: str) -> None:
    """Replica B refreshes an answer (cache: no-cache); replica A, which served it from its copy,
    serves B's answer once Redis has told it. (B reaches Redis through a proxy: a connection of its
    own, as another process's is.)"""
    answers = iter([b"one", b"two"])

    def upstream(request: UpstreamRequest) -> MockResponse:
        content = next(answers)
        return MockResponse(200, b'{"id":"x","object":"chat.completion","choices":[{"index":0,"message":'
                            b'{"role":"assistant","content":"%b"},"finish_reason":"stop"}]}' % content)  # fmt: skip

    config = {"model_list": [deployment("gpt", "openai/gpt-4o")]}
    proxy = CuttableProxy(6379)
    await proxy.start()
    stores = [RedisStore(RedisSettings(url, "test")) for url in (REDIS_URL, f"redis://127.0.0.1:{proxy.port}/0")]
    for name in "ab":
        (tmp_path / name).mkdir()
    (a, _), (b, _) = (
        make_app(tmp_path / name, config, upstream, [Cache(CacheConfig("test", namespace=space), store)])
        for name, store in zip("ab", stores, strict=True)
    )
    chat = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    try:
        assert b'"one"' in (await arequest(a, "POST", "/v1/chat/completions", chat)).body  # a miss: stored
        for _ in range(50):  # hits, until A keeps a copy
            assert b'"one"' in (await arequest(a, "POST", "/v1/chat/completions", chat)).body
            if stores[0]._near.copies:
                break
            await asyncio.sleep(0.005)
        assert stores[0]._near.copies
        fresh = await arequest(b, "POST", "/v1/chat/completions", {**chat, "cache": {"no-cache": True}})
        assert b'"two"' in fresh.body
        await until(lambda: not stores[0]._near.copies)
        assert b'"two"' in (await arequest(a, "POST", "/v1/chat/completions", chat)).body
    finally:
        for store in stores:
            await store.close()
        await proxy.cut()


async def test_stores_sharing_a_connection_share_their_copies(direct: redis.Redis, space: str) -> None:
    """Two stores in one process (the old and the new config during a reload) write over one
    connection, of whose writes Redis tells nothing: one's write drops the other's copy."""
    old, new = (RedisStore(RedisSettings(REDIS_URL, "test")) for _ in range(2))
    key = f"{space}:i"
    try:
        direct.set(key, stored(b"before"), px=60_000)
        await old.get(key)  # (connected)
        await tracking(new, key)
        old.put(key, Entry(time.time(), None, b"after"), 60)  # a request the old config still serves
        assert key not in new._near.copies
        found = await new.get(key, new.ask(key))
        assert found is not None and found.body == b"after"
        await old.close()
        await tracking(new, key)  # still tracking for the store left
    finally:
        await old.close()
        await new.close()


async def test_a_flushed_database_drops_every_copy(space: str) -> None:
    url = "redis://127.0.0.1:6379/13"  # (a database of its own: this test empties it)
    store, direct = RedisStore(RedisSettings(url, "test")), redis.Redis.from_url(url)
    keys = [f"{space}:j{n}" for n in range(2)]
    try:
        for key in keys:
            direct.set(key, stored(b"x"), px=60_000)
            await tracking(store, key)
        direct.flushdb()
        await until(lambda: not store._near.copies)
        assert [await store.get(key, store.ask(key)) for key in keys] == [None, None]
    finally:
        direct.close()
        await store.close()
