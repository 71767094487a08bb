"""Leases against the real Redis (leases.py): a busy set of scopes far from its limits is counted in
blocks, admitted in the process and settled in batches; near a limit every request is checked in
Redis; two workers never admit past a limit together; and what a lease did not use goes back."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis

from seance.gateway.ratelimits import GIVE_BACK, NO_TOKENS, SETTLE, Entry, Verdict, shared
from seance.gateway.ratelimits.shared import SharedStore
from seance.gateway.shared_state import RedisSettings

REDIS_URL = os.environ.get("SEANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def direct() -> AsyncIterator[tuple[redis.Redis, str]]:
    """A client of the test's own, and a key prefix no other test uses (its keys deleted after)."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"the tests need Redis at {REDIS_URL} (.ci/run starts one): {exc}")
    prefix = f"seance-test:{os.urandom(6).hex()}:"
    yield client, prefix
    keys = list(client.scan_iter(match=prefix + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def counting(store: SharedStore) -> list[int]:
    """The `want` of every ACQUIRE the store sends (each a round trip to Redis)."""
    asked: list[int] = []
    sent = store._ask

    async def ask(commands: Any, estimate: int, want: int) -> Verdict | None:
        asked.append(want)
        return await sent(commands, estimate, want)

    store._ask = ask  # type: ignore[method-assign]
    return asked


def in_flight(client: redis.Redis, key: str) -> int:
    return sum(int(value or 0) for value in client.hmget(key, "a0", "a1", "a2"))


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_busy_scope_far_from_its_limits_is_counted_in_blocks(direct: tuple[redis.Redis, str]) -> None:
    client, prefix = direct
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix)
    asked = counting(store)
    entries: tuple[Entry, ...] = (("key:busy", 100_000, 10_000_000, 1_000),)
    try:
        verdicts = [await store.acquire(entries, 10) for _ in range(200)]
        assert all(v.admitted for v in verdicts)
        # each request sees the scope's count with itself in it, as the x-ratelimit-* headers show it
        assert [int(v.counts[0][1]) for v in verdicts] == list(range(1, 201))
        assert [int(v.counts[0][2]) for v in verdicts] == list(range(10, 2001, 10))
        assert len(asked) <= 10 and asked[:4] == [1, 2, 4, 8]  # round trips: 1 + 2 + 4 + … requests
        for verdict in verdicts:
            verdict.store.release_now((verdict.store, entries, verdict.counts, 10), 7)
        key = prefix + "key:busy"
        # settled in batches; the last lease's unused requests, tokens and places given back with a close
        await store.close()
        assert client.hget(key, "r") == b"200" and client.hget(key, "t") == b"1400"
        assert in_flight(client, key) == 0
    finally:
        store.client.close()


async def test_near_a_limit_every_request_is_checked_in_redis(direct: tuple[redis.Redis, str]) -> None:
    client, prefix = direct
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix)
    asked = counting(store)
    entries: tuple[Entry, ...] = (("key:small", 20, None, None),)
    try:
        verdicts = [await store.acquire(entries, 0) for _ in range(25)]
        assert [v.admitted for v in verdicts] == [True] * 20 + [False] * 5
        assert len(asked) == 25  # 20 / LEASE_SHARE < 2: no request was taken from a lease
        assert client.hget(prefix + "key:small", "r") == b"20"
    finally:
        store.client.close()


async def test_two_workers_together_never_admit_past_a_limit(direct: tuple[redis.Redis, str]) -> None:
    client, prefix = direct
    workers = [SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix) for _ in range(2)]
    entries: tuple[Entry, ...] = (("key:shared", 300, None, 10_000),)
    try:

        async def send(store: SharedStore) -> Verdict:
            verdict = await store.acquire(entries, 0)
            if verdict.admitted:
                await asyncio.sleep(0)
                verdict.store.release_now((verdict.store, entries, verdict.counts, 0), 0)
            return verdict

        verdicts = await asyncio.gather(*(send(workers[i % 2]) for i in range(1_000)))
        assert sum(v.admitted for v in verdicts) == 300
        for store in workers:
            await store.close()
        assert client.hget(prefix + "key:shared", "r") == b"300"
        assert in_flight(client, prefix + "key:shared") == 0
    finally:
        for store in workers:
            store.client.close()


async def test_what_a_lease_did_not_use_goes_back_when_it_ends(direct: tuple[redis.Redis, str]) -> None:
    client, prefix = direct
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix, lease_ttl=0.2)
    entries: tuple[Entry, ...] = (("key:idle", 10_000, None, 5_000),)
    key = prefix + "key:idle"
    try:
        verdicts = [await store.acquire(entries, 0) for _ in range(4)]  # the third and fourth: a lease of 4
        assert int(client.hget(key, "r") or 0) == 7 and in_flight(client, key) == 7
        for verdict in verdicts:
            verdict.store.release_now((verdict.store, entries, verdict.counts, 0), 0)
        # the lease's time ends: its 3 unused requests and places are given back without a close
        await until(lambda: client.hget(key, "r") == b"4" and in_flight(client, key) == 0)
        # and the next request, after a quiet while, is counted alone again
        await asyncio.sleep(0.25)
        assert (await store.acquire(entries, 0)).admitted and client.hget(key, "r") == b"5"
    finally:
        store.client.close()


async def test_tokens_settle_to_what_was_used(direct: tuple[redis.Redis, str]) -> None:
    """A tpm far away: the lease reserves the asking request's estimate for each of its requests,
    the requests' real usage replaces it, and what the lease did not take goes back."""
    client, prefix = direct
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix)
    entries: tuple[Entry, ...] = (("key:tokens", None, 1_000_000, None),)
    try:
        verdicts = [await store.acquire(entries, 100) for _ in range(20)]
        for i, verdict in enumerate(verdicts):
            verdict.store.release_now((verdict.store, entries, verdict.counts, 100), i)
        await store.close()
        assert client.hget(prefix + "key:tokens", "t") == str(sum(range(20))).encode()
        assert client.hget(prefix + "key:tokens", "r") == b"20"
    finally:
        store.client.close()


async def test_the_last_entry_of_a_leased_request_is_given_back_as_released(direct: tuple[redis.Redis, str]) -> None:
    """A deployment counted last with a key's limits (the limits hook's `share`): a request that
    never reached it gives its request and tokens back (GIVE_BACK), one answered by another try its
    tokens only (NO_TOKENS); the key counts them all, leased or not."""
    client, prefix = direct
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix)
    entries: tuple[Entry, ...] = (("key:k", 100_000, 10_000_000, None), ("deployment:d", 100_000, 10_000_000, None))
    try:
        verdicts = [await store.acquire(entries, 10) for _ in range(30)]
        assert len({id(v.store) for v in verdicts}) > 2  # counted in leases
        for i, verdict in enumerate(verdicts):  # 10 settled, 10 never sent, 10 answered by another try
            last = (SETTLE, GIVE_BACK, NO_TOKENS)[i % 3]
            verdict.store.release_now((verdict.store, entries, verdict.counts, 10), 5, last)
        await store.close()
        assert client.hget(prefix + "key:k", "r") == b"30" and client.hget(prefix + "key:k", "t") == b"150"
        assert client.hget(prefix + "deployment:d", "r") == b"20"
        assert client.hget(prefix + "deployment:d", "t") == b"50"
    finally:
        store.client.close()


async def test_a_lease_asked_for_by_a_request_that_goes_away_is_not_lost(direct: tuple[redis.Redis, str]) -> None:
    """The client of the request asking for a lease leaves (its task is cancelled) while Redis
    counts the grant: the lease is still the entries' (asked by a task of its own), the requests
    waiting take from it, and what no one took goes back."""
    client, prefix = direct
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix)
    entries: tuple[Entry, ...] = (("key:gone", 100_000, None, 1_000),)
    key = prefix + "key:gone"
    try:
        assert (await store.acquire(entries, 0)).admitted  # (alone: the next one asks for 2)
        asking = asyncio.ensure_future(store.acquire(entries, 0))
        await asyncio.sleep(0)  # it has sent its ACQUIRE
        waiting = asyncio.ensure_future(store.acquire(entries, 0))
        await asyncio.sleep(0)
        asking.cancel()
        verdict = await waiting
        assert verdict.admitted and verdict.store is not store  # taken from the lease
        verdict.store.release_now((verdict.store, entries, verdict.counts, 0), 0)
        await store.close()
        assert client.hget(key, "r") == b"2"  # the first, and the one that waited: the cancelled none
        assert in_flight(client, key) == 1  # the first's place (never released here)
    finally:
        store.client.close()


async def test_a_server_without_the_scripts_settles_leases_too(
    direct: tuple[redis.Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a SCRIPT FLUSH (or on a new server) the first ACQUIRE meets NOSCRIPT: it is sent again
    as EVAL, and the settlements' script is loaded with it, so the batches sent without waiting for
    a reply (whose errors the server does not send) still land."""
    client, prefix = direct
    scripts = {}
    for name in ("ACQUIRE", "SETTLE_SCRIPT"):  # versions this server has never seen
        script = getattr(shared, name) + f"-- {os.urandom(8).hex()}\n"
        monkeypatch.setattr(shared, name, script)
        monkeypatch.setitem(shared.SHAS, script, hashlib.sha1(script.encode()).hexdigest())
        scripts[name] = script
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix)
    store.client.setup = ()  # a connection that does not load the scripts
    entries: tuple[Entry, ...] = (("key:flushed", 100_000, None, 1_000),)
    key = prefix + "key:flushed"
    try:
        verdicts = [await store.acquire(entries, 0) for _ in range(4)]  # one alone, then leases
        assert verdicts[0].store is store and verdicts[1].store is not store
        # the first release asks whether the server skips replies; once it has said it does, no
        # error of a command sent without one comes back
        store.release_now((store, entries, verdicts[0].counts, 0), 0)
        await until(lambda: store.client._connection is not None and store.client._connection.skips is True)
        for verdict in verdicts[1:]:
            verdict.store.release_now((verdict.store, entries, verdict.counts, 0), 0)
        await store.close()
        assert client.hget(key, "r") == b"4" and in_flight(client, key) == 0 and not store.down
        assert client.script_exists(shared.SHAS[scripts["SETTLE_SCRIPT"]]) == [True]
    finally:
        store.client.close()
