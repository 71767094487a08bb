"""A deployment's rpm/tpm shared through the real Redis (router_settings.enable_pre_call_checks),
counted by the limits hook in the same script call as the caller's limits: one round trip a request,
not two; the router sends the request there without counting it again; a request that never reaches
the deployment (a cache hit) gives its count back; a retry is counted again and the tokens once; the
deployment at its limit sends the request to the group's fallbacks."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
import redis
from tests.databases import db_env, pg_database, sqlite_database
from tests.gateway.pipeline.test_limits import REDIS_URL
from tests.gateway.routing.test_strategies_shared import answer as streamed
from tests.stack import ANSWER, MASTER, model, stack

from seance.gateway.pipeline.cache import Cache
from seance.gateway.pipeline.cache_stores import RedisStore
from seance.gateway.resp import Client
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

__all__ = ["db_env", "pg_database", "sqlite_database"]  # the fixtures, for pytest

PRE_CALL = {"enable_pre_call_checks": True, "num_retries": 0}


def limited(name: str, run: str, **limits: int) -> dict[str, Any]:
    """A deployment of its own id each run (Redis keeps a window's counts for a minute)."""
    entry = model(name, id=f"{run}-{name}")
    entry["litellm_params"].update(limits)
    return entry


def counted(run: str, name: str) -> dict[bytes, bytes]:
    """The deployment's shared count in Redis: r requests, t tokens."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return client.hgetall(f"seance:rl:deployment:{run}-{name}")  # type: ignore[return-value]
    finally:
        client.close()


def key_count(key: str) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return client.hgetall(f"seance:rl:key:{hashlib.sha256(key.encode()).hexdigest()}")  # type: ignore[return-value]
    finally:
        client.close()


def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The calls to Redis on the request path that wait for a reply, every client's (a release is
    sent without waiting)."""
    sent: list[bytes] = []
    request = Client.request

    def counting(self: Client, command: bytes) -> Awaitable[Any]:
        sent.append(command)
        return request(self, command)

    monkeypatch.setattr(Client, "request", counting)
    return sent


async def settled() -> None:
    """Releases go out without waiting for a reply: let them reach Redis."""
    await asyncio.sleep(0.05)


async def test_the_key_and_the_deployment_are_counted_in_one_round_trip(
    tmp_path: Path, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:12]
    async with stack(tmp_path, db_env, [limited("a", run, rpm=3)], redis_url=REDIS_URL, router=PRE_CALL) as s:
        key = await s.generate(rpm_limit=100)
        sent = round_trips(monkeypatch)
        for remaining in (99, 98, 97):
            answer = await s.chat(key)
            assert answer.status_code == 200, answer.text
            # the caller's limits in the headers, not the deployment's
            assert answer.headers["x-ratelimit-limit-requests"] == "100"
            assert answer.headers["x-ratelimit-remaining-requests"] == str(remaining)
        assert len(sent) == 3, "one call a request: the key's limits and the deployment's together"
        await settled()
        assert counted(run, "a") == {b"s": counted(run, "a")[b"s"], b"r": b"3", b"t": b"45"}

        refused = await s.chat(key)  # the deployment is used up; the key is not
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "no_deployments_available"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        await settled()
        assert counted(run, "a")[b"r"] == b"3"
        assert key_count(key)[b"r"] == b"4", "the key counts the request it sent"
        assert len(s.transport.requests) == 3


async def test_the_master_key_counts_the_deployment_in_the_hook_too(
    tmp_path: Path, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:12]
    async with stack(tmp_path, db_env, [limited("a", run, rpm=2)], redis_url=REDIS_URL, router=PRE_CALL) as s:
        sent = round_trips(monkeypatch)
        statuses = [(await s.chat(MASTER)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        assert len(sent) == 3
        await settled()
        assert counted(run, "a")[b"r"] == b"2"


async def test_a_cache_hit_gives_the_deployment_its_count_back(tmp_path: Path, db_env: dict[str, str]) -> None:
    run = uuid.uuid4().hex[:12]
    cache = {"cache": True, "cache_params": {"type": "local"}}
    async with stack(
        tmp_path, db_env, [limited("a", run, rpm=5, tpm=1000)], redis_url=REDIS_URL, router=PRE_CALL, litellm=cache
    ) as s:
        key = await s.generate(rpm_limit=100)
        first = await s.chat(key)
        await settled()
        hit = await s.chat(key)
        assert first.status_code == hit.status_code == 200 and first.json() == hit.json()
        assert len(s.transport.requests) == 1, "the second was answered from the cache"
        await settled()
        dep = counted(run, "a")
        assert (dep[b"r"], dep[b"t"]) == (b"1", b"15"), "the provider was asked once, for 15 tokens"
        assert key_count(key)[b"r"] == b"2", "the key counts both (LiteLLM counts cache hits)"


async def test_a_hit_from_the_caches_copy_counts_no_deployment(
    tmp_path: Path, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a worker keeps a copy of the cached answer (cache_near.py), the hit is known before the
    limits count: the key is counted alone (one script, one hash), and the master key not at all."""
    run = uuid.uuid4().hex[:12]
    space = f"seance-test-{run}"
    cache = {"cache": True, "cache_params": {"type": "redis", "namespace": space}}
    try:
        async with stack(
            tmp_path, db_env, [limited("a", run, rpm=100, tpm=100_000)], redis_url=REDIS_URL, router=PRE_CALL,
            litellm=cache,
        ) as s:  # fmt: skip
            (cache_hook,) = [hook for hook in s.app.pipeline.hooks if isinstance(hook, Cache)]
            assert isinstance(cache_hook.store, RedisStore)
            key = await s.generate(rpm_limit=100)
            assert (await s.chat(key)).status_code == 200  # a miss: the deployment counts it
            await settled()
            for _ in range(50):  # hits, until this worker keeps a copy
                assert (await s.chat(key)).status_code == 200
                if cache_hook.store._near.copies:
                    break
                await asyncio.sleep(0.005)
            assert cache_hook.store._near.copies
            await settled()
            before = int(key_count(key)[b"r"])
            sent = round_trips(monkeypatch)
            hits = [await s.chat(key), await s.chat(MASTER)]
            assert [hit.status_code for hit in hits] == [200, 200] and len(s.transport.requests) == 1
            assert len(sent) == 1 and f"deployment:{run}-a".encode() not in sent[0]  # the key's script alone
            await settled()
            assert counted(run, "a")[b"r"] == b"1", "only the miss reached the deployment"
            assert int(key_count(key)[b"r"]) == before + 1, "the key counts its hit"
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        for name in client.scan_iter(match=space + "*"):
            client.delete(name)
        client.close()


async def test_a_retry_is_counted_again_and_the_tokens_once(tmp_path: Path, db_env: dict[str, str]) -> None:
    run = uuid.uuid4().hex[:12]
    tries: list[int] = []

    def flaky(request: UpstreamRequest) -> MockResponse:
        tries.append(1)
        if len(tries) == 1:
            return MockResponse(503, b'{"error":{"message":"overloaded"}}', {"retry-after": "0"})
        return MockResponse(200, ANSWER)

    router = {**PRE_CALL, "num_retries": 1}
    async with stack(
        tmp_path, db_env, [limited("a", run, rpm=5, tpm=1000)], redis_url=REDIS_URL, router=router, answer=flaky
    ) as s:
        key = await s.generate(tpm_limit=1000)
        answer = await s.chat(key)
        assert answer.status_code == 200, answer.text
        assert len(tries) == 2
        await settled()
        dep = counted(run, "a")
        assert (dep[b"r"], dep[b"t"]) == (b"2", b"15"), "two requests reached it; the answer used 15 tokens"
        assert key_count(key)[b"t"] == b"15"


async def test_a_used_up_deployment_sends_the_request_to_its_fallback(tmp_path: Path, db_env: dict[str, str]) -> None:
    run = uuid.uuid4().hex[:12]
    models = [limited("a", run, rpm=1), limited("b", run, rpm=10)]
    router = {**PRE_CALL, "fallbacks": [{"a": ["b"]}]}
    async with stack(tmp_path, db_env, models, redis_url=REDIS_URL, router=router) as s:
        key = await s.generate(rpm_limit=100)
        assert (await s.chat(key)).status_code == 200
        second = await s.chat(key)
        assert second.status_code == 200, second.text
        upstream = [request.body for request in s.transport.requests]
        assert [b'"model":"a"' in body for body in upstream if body] == [True, False]
        await settled()
        assert (counted(run, "a")[b"r"], counted(run, "b")[b"r"]) == (b"1", b"1")


async def test_redis_unreachable_counts_both_in_the_process(
    tmp_path: Path, db_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    run = uuid.uuid4().hex[:12]
    with caplog.at_level(logging.WARNING, logger="seance.gateway"):
        async with stack(tmp_path, db_env, [limited("a", run, rpm=2)], redis_url=closed, router=PRE_CALL) as s:
            key = await s.generate(rpm_limit=100)
            statuses = [(await s.chat(key)).status_code for _ in range(3)]
            assert statuses == [200, 200, 429], "no 500, and the deployment's limit still holds"
    warned = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("rate limits: Redis at"), warned


async def test_a_streams_tokens_are_settled_once(tmp_path: Path, db_env: dict[str, str]) -> None:
    """Its usage is known only at its end: the hook's release settles it, the router adds none."""
    run = uuid.uuid4().hex[:12]
    async with stack(
        tmp_path, db_env, [limited("a", run, tpm=1000)], redis_url=REDIS_URL, router=PRE_CALL, answer=streamed
    ) as s:
        key = await s.generate(tpm_limit=1000)
        answer = await s.chat(key, stream=True)
        assert answer.status_code == 200 and b"[DONE]" in answer.content, answer.text
        await settled()
        dep = counted(run, "a")
        assert (dep[b"r"], dep[b"t"]) == (b"1", b"15"), dep
        assert key_count(key)[b"t"] == b"15"
