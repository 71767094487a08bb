"""Rate limits, in-process and in the real Redis on 127.0.0.1 (the same suite, parametrised): rpm,
tpm (streams too), parallel, per model group; 429 with retry-after and OpenAI's x-ratelimit-*
headers; Redis cut mid-run falls back to in-process and comes back.

Virtual keys (the auth hook that fills Caller.limits) are on another branch: until they land, the
`GiveLimits` hook (stand_in_keys.py) stands in for them, setting a Caller with Limits after the
master-key check.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from tests.cuttable_proxy import CuttableProxy
from tests.gateway.asgi_client import KEY, arequest, deployment, make_app
from tests.gateway.pipeline.stand_in_keys import KEY_HASH, GiveLimits
from tests.wire import load

from seance.gateway.app import Gateway
from seance.gateway.config import load_settings
from seance.gateway.context import Limits
from seance.gateway.pipeline import hooks
from seance.gateway.pipeline.auth import Auth
from seance.gateway.pipeline.limits import TEXT_FIELDS, RateLimits, estimate_tokens
from seance.gateway.ratelimits import Store, shared
from seance.gateway.ratelimits.memory import MemoryStore
from seance.gateway.ratelimits.shared import SharedStore
from seance.gateway.shared_state import RedisSettings
from seance.gateway.upstream import Timeout, UpstreamRequest, UpstreamResponse
from seance.gateway.upstream.mock import MockResponse, MockTransport

REDIS_URL = os.environ.get("SEANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
CONFIG = {"model_list": [deployment("gpt", "openai/gpt-4o"), deployment("other", "openai/gpt-4o-mini")]}
ANSWER = (
    b'{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
)


def answer(_: UpstreamRequest) -> MockResponse:
    return MockResponse(200, ANSWER)


class GatedTransport(MockTransport):
    """An upstream that holds every request until `gate` opens: requests in flight, for parallel
    limits and bursts."""

    def __init__(self, handler: Callable[[UpstreamRequest], MockResponse | BaseException]) -> None:
        super().__init__(handler)
        self.gate = asyncio.Event()

    async def send(self, request: UpstreamRequest, timeout: Timeout, provider: str) -> UpstreamResponse:
        await self.gate.wait()
        return await super().send(request, timeout, provider)


def _redis_store() -> tuple[SharedStore, Callable[[], None]]:
    prefix = f"seance-test:{os.urandom(6).hex()}:"
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"the tests need Redis at {REDIS_URL} (.ci/run starts one): {exc}")

    def clean() -> None:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()

    return store, clean


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    shared, clean = _redis_store()
    yield shared
    clean()
    assert not shared.down  # counted in Redis throughout, not in the fallback


def app_with(tmp_path: Path, store: Store, *limits: Limits, handler: Any = answer, **kw: Any) -> Gateway:
    app, _ = make_app(tmp_path, CONFIG, handler, [GiveLimits(*limits, **kw), RateLimits(store)])
    return app


def gated_app(tmp_path: Path, store: Store, *limits: Limits) -> tuple[Gateway, GatedTransport]:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps(CONFIG))
    transport = GatedTransport(answer)
    hook_list = [Auth(KEY, False), GiveLimits(*limits), RateLimits(store)]
    return Gateway(load_settings(path, {"LITELLM_MASTER_KEY": KEY}), hook_list, transport), transport


def scope() -> str:
    return f"key:{os.urandom(8).hex()}"


async def test_a_key_limited_to_5_rpm_gets_exactly_5_then_429_with_retry_after(tmp_path: Path, store: Store) -> None:
    app = app_with(tmp_path, store, Limits(scope(), rpm=5))
    answers = [await arequest(app, "POST", "/v1/chat/completions", CHAT) for _ in range(7)]
    assert [a.status for a in answers] == [200] * 5 + [429] * 2
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
    assert all(a.headers["x-ratelimit-limit-requests"] == "5" for a in answers)
    limited = answers[5]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    error = limited.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "429"
    assert "key 'ci-bot'" in error["message"] and "rpm limit of 5" in error["message"]
    assert "x-ratelimit-limit-tokens" not in limited.headers  # no tpm limit set: no tokens headers


async def test_the_message_names_the_scope_never_the_key(tmp_path: Path, store: Store) -> None:
    team = f"team-{os.urandom(4).hex()}"
    app = app_with(tmp_path, store, Limits(scope(), rpm=10), Limits(f"team:{team}", rpm=1), alias=None)
    assert (await arequest(app, "POST", "/v1/chat/completions", CHAT)).status == 200
    limited = await arequest(app, "POST", "/v1/chat/completions", CHAT)
    assert limited.status == 429
    message = limited.json()["error"]["message"]
    assert f"team '{team}' is at its rpm limit of 1" in message
    # the tightest scope's counts: the team's, with nothing left
    assert limited.headers["x-ratelimit-limit-requests"] == "1"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"


async def test_a_key_without_alias_is_named_by_its_hash_prefix(tmp_path: Path, store: Store) -> None:
    app = app_with(tmp_path, store, Limits(f"key:{KEY_HASH}-{os.urandom(4).hex()}", rpm=0), alias=None)
    limited = await arequest(app, "POST", "/v1/chat/completions", CHAT)
    assert limited.status == 429
    assert f"key with hash {KEY_HASH[:12]}…" in limited.json()["error"]["message"]


async def test_anthropic_clients_get_anthropic_s_error_shape(tmp_path: Path, store: Store) -> None:
    config = {"model_list": [deployment("claude", "anthropic/claude-haiku-4-5")]}
    hook_list = [GiveLimits(Limits(scope(), rpm=0)), RateLimits(store)]
    app, transport = make_app(tmp_path, config, answer, hook_list)
    body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    limited = await arequest(app, "POST", "/v1/messages", body)
    assert limited.status == 429 and "retry-after" in limited.headers
    assert limited.json()["type"] == "error" and limited.json()["error"]["type"] == "rate_limit_error"
    assert transport.requests == []


async def test_refused_requests_count_nowhere(tmp_path: Path, store: Store) -> None:
    """A request refused by one scope is not counted in the others (all or nothing)."""
    key = Limits(scope(), rpm=3)
    blocked = app_with(tmp_path, store, key, Limits(scope(), rpm=0))
    for _ in range(5):
        assert (await arequest(blocked, "POST", "/v1/chat/completions", CHAT)).status == 429
    free = app_with(tmp_path, store, key)
    statuses = [(await arequest(free, "POST", "/v1/chat/completions", CHAT)).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def _usage_total(stream: bytes) -> int:
    for line in reversed(stream.split(b"\n")):
        if line.startswith(b"data: {") and b'"usage":{' in line.replace(b" ", b""):
            usage: dict[str, int] = orjson.loads(line[6:])["usage"]
            return usage["total_tokens"]
    raise AssertionError("no usage chunk")


async def test_tpm_counts_the_real_usage_of_streamed_answers(tmp_path: Path, store: Store) -> None:
    (exchange,) = load("openai/chat-stream-include-usage.httprr.txt")
    used = _usage_total(exchange.response_body)

    def stream(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, [exchange.response_body], {"content-type": "text/event-stream"})

    app = app_with(tmp_path, store, Limits(scope(), tpm=2 * used), handler=stream)
    body = {**CHAT, "stream": True}  # no stream_options: the gateway asks for usage itself
    estimate = estimate_tokens(body)
    first = await arequest(app, "POST", "/v1/chat/completions", body)
    assert first.status == 200 and first.headers["x-ratelimit-remaining-tokens"] == str(2 * used - estimate)
    second = await arequest(app, "POST", "/v1/chat/completions", body)
    assert second.status == 200  # `used` counted so far, under the limit
    assert second.headers["x-ratelimit-remaining-tokens"] == str(used - estimate)
    third = await arequest(app, "POST", "/v1/chat/completions", body)
    assert third.status == 429 and "tpm limit of" in third.json()["error"]["message"]
    assert third.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_a_burst_overruns_tpm_by_at_most_one_request(tmp_path: Path, store: Store) -> None:
    """Concurrent requests see each other's reserved estimate before any has its answer."""
    app, transport = gated_app(tmp_path, store, Limits(scope(), tpm=100))
    body = {**CHAT, "max_tokens": 60}
    tasks = [asyncio.create_task(arequest(app, "POST", "/v1/chat/completions", body)) for _ in range(6)]
    await _until(lambda: sum(t.done() for t in tasks) == 4)
    assert len(transport.requests) == 0 and all(t.result().status == 429 for t in tasks if t.done())
    transport.gate.set()
    statuses = [(await t).status for t in tasks]
    assert statuses.count(200) == 2  # 0 + 60 < 100 admits the second; 120 refuses the rest


async def test_errors_give_their_reserved_tokens_back(tmp_path: Path, store: Store) -> None:
    def failing(_: UpstreamRequest) -> MockResponse:
        return MockResponse(400, b'{"error": {"message": "bad", "type": "invalid_request_error"}}')

    limits = Limits(scope(), tpm=100)
    body = {**CHAT, "max_tokens": 150}
    failing_app = app_with(tmp_path, store, limits, handler=failing)
    for _ in range(3):
        assert (await arequest(failing_app, "POST", "/v1/chat/completions", body)).status == 400
    ok = await arequest(app_with(tmp_path, store, limits), "POST", "/v1/chat/completions", CHAT)
    assert ok.status == 200 and ok.headers["x-ratelimit-remaining-tokens"] == str(100 - estimate_tokens(CHAT))


async def test_parallel_limit_with_a_slow_upstream(tmp_path: Path, store: Store) -> None:
    app, transport = gated_app(tmp_path, store, Limits(scope(), parallel=2))
    tasks = [asyncio.create_task(arequest(app, "POST", "/v1/chat/completions", CHAT)) for _ in range(5)]
    await _until(lambda: sum(t.done() for t in tasks) == 3 and len(transport.requests) == 0)
    refused = [t.result() for t in tasks if t.done()]
    assert all(a.status == 429 and a.headers["retry-after"] == "1" for a in refused)
    assert "max_parallel_requests limit of 2" in refused[0].json()["error"]["message"]
    transport.gate.set()
    assert sorted(a.status for a in await asyncio.gather(*tasks)) == [200, 200, 429, 429, 429]
    # both ended: their places are free again
    again = await asyncio.gather(*(arequest(app, "POST", "/v1/chat/completions", CHAT) for _ in range(2)))
    assert [a.status for a in again] == [200, 200]


async def test_model_group_limits_count_per_model(tmp_path: Path, store: Store) -> None:
    limits = Limits(scope(), model_rpm={"gpt": 1}, model_tpm={"other": 5})
    app = app_with(tmp_path, store, limits)
    assert (await arequest(app, "POST", "/v1/chat/completions", CHAT)).status == 200
    limited = await arequest(app, "POST", "/v1/chat/completions", CHAT)
    assert limited.status == 429
    assert "model_rpm limit of 1 requests per minute for model group 'gpt'" in limited.json()["error"]["message"]
    other = {**CHAT, "model": "other"}
    assert (await arequest(app, "POST", "/v1/chat/completions", other)).status == 200  # 10 tokens used
    assert (await arequest(app, "POST", "/v1/chat/completions", other)).status == 429


async def test_master_key_requests_carry_no_limit_headers_of_the_gateways(tmp_path: Path, store: Store) -> None:
    app, _ = make_app(tmp_path, CONFIG, answer, [RateLimits(store)])
    result = await arequest(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 200 and not any(name.startswith("x-ratelimit") for name in result.headers)


def test_the_hook_is_listed_only_when_limits_can_apply() -> None:
    off = hooks.build(hooks.Features(master_key="k"))
    assert not any(isinstance(h, RateLimits) for h in off)
    on = hooks.build(hooks.Features(master_key="k", limits=True))
    (limits,) = [h for h in on if isinstance(h, RateLimits)]
    assert isinstance(limits.store, MemoryStore)
    shared = hooks.build(hooks.Features(master_key="k", limits=True, redis=RedisSettings(REDIS_URL, "test")))
    assert any(isinstance(h, RateLimits) and isinstance(h.store, SharedStore) for h in shared)


def test_the_estimate_is_text_length_over_4_plus_max_tokens() -> None:
    image = {"url": "data:image/png;base64," + "z" * 10_000}
    body = {
        "model": "gpt",
        "max_tokens": 50,
        "messages": [
            {"role": "system", "content": "x" * 40},
            {"role": "user", "content": [{"type": "text", "text": "y" * 40},
                                         {"type": "image_url", "image_url": image}]},
        ],
    }  # fmt: skip
    # the role and type names count too (a few characters); the image's data URL does not
    assert 20 + 50 <= estimate_tokens(body) <= 20 + 50 + 8
    assert estimate_tokens({"model": "e", "input": ["a" * 400]}) == 100
    assert estimate_tokens({"model": "gpt", "messages": [], "max_completion_tokens": 7}) == 7
    # an endpoint's own text fields only, when given (the hook gives TEXT_FIELDS[route])
    chat = {"model": "gpt", "messages": [{"role": "user", "content": "z" * 36}], "prompt": "p" * 400}
    assert estimate_tokens(chat, TEXT_FIELDS["chat"]) == 10 and estimate_tokens(chat) == 110


async def test_the_providers_headers_fill_in_what_the_keys_limits_do_not_say(tmp_path: Path, store: Store) -> None:
    """A key with an rpm limit and no tpm limit: its own requests left, the provider's tokens left
    (and nothing of the provider's about requests, which would contradict the key's)."""

    def provider(_: UpstreamRequest) -> MockResponse:
        return MockResponse(200, ANSWER, headers={
            "content-type": "application/json", "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499", "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "29990",
        })  # fmt: skip

    app = app_with(tmp_path, store, Limits(scope(), rpm=5), handler=provider)
    result = await arequest(app, "POST", "/v1/chat/completions", CHAT)
    assert result.status == 200
    limits = {name: value for name, value in result.headers.items() if name.startswith("x-ratelimit-")}
    assert limits == {
        "x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-limit-tokens": "30000", "x-ratelimit-remaining-tokens": "29990",
    }  # fmt: skip
    master, _ = make_app(tmp_path, CONFIG, provider, [RateLimits(store)])
    unlimited = await arequest(master, "POST", "/v1/chat/completions", CHAT)
    assert unlimited.headers["x-ratelimit-remaining-requests"] == "499"


async def test_success_headers_show_the_tightest_scope(tmp_path: Path, store: Store) -> None:
    app = app_with(tmp_path, store, Limits(scope(), rpm=10, tpm=10_000), Limits(scope(), rpm=3, tpm=50_000))
    answers = [await arequest(app, "POST", "/v1/chat/completions", CHAT) for _ in range(2)]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1"]
    assert all(a.headers["x-ratelimit-limit-requests"] == "3" for a in answers)
    assert answers[0].headers["x-ratelimit-limit-tokens"] == "10000"
    assert answers[0].headers["x-ratelimit-remaining-tokens"] == str(10_000 - estimate_tokens(CHAT))


@pytest.fixture
async def proxy() -> AsyncIterator[CuttableProxy]:
    parts = redis.connection.parse_url(REDIS_URL)
    running = CuttableProxy(parts.get("port", 6379), parts.get("host", "127.0.0.1"))
    await running.start()
    yield running
    if running.server is not None and running.server.is_serving():
        await running.cut()


async def test_redis_cut_mid_run_falls_back_then_comes_back(
    tmp_path: Path, proxy: CuttableProxy, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"seance-test:{os.urandom(6).hex()}:"
    store = SharedStore(
        RedisSettings(f"redis://127.0.0.1:{proxy.port}/0", "test"), prefix=prefix, probe_every=0.1, lease_ttl=0.3
    )
    name = scope()
    app = app_with(tmp_path, store, Limits(name, rpm=1000, tpm=100_000, parallel=50))
    direct = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        for _ in range(3):
            assert (await arequest(app, "POST", "/v1/chat/completions", CHAT)).status == 200
        assert direct.hget(prefix + name, "r") == b"3"
        # their releases are sent without waiting for the replies: all in before the cut
        await _until(lambda: not _in_flight(direct, prefix + name))

        await proxy.cut()
        caplog.set_level(logging.INFO, logger="seance.gateway")
        during = await asyncio.gather(*(arequest(app, "POST", "/v1/chat/completions", CHAT) for _ in range(10)))
        assert [a.status for a in during] == [200] * 10  # no 500: counted in this process
        assert store.down and store.local.windows[name][1] == 10
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
        assert f"127.0.0.1:{proxy.port}" in warnings[0].getMessage()

        await proxy.start()  # the same port again
        await _until(lambda: not store.down, seconds=5)
        assert "is back" in caplog.text
        after = await arequest(app, "POST", "/v1/chat/completions", CHAT)
        assert after.status == 200
        # shared again: 4 requests counted in Redis, once the lease this one may have come with
        # (leases.py) has ended and given back the requests it did not use
        await _until(lambda: direct.hget(prefix + name, "r") == b"4")
        assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
        # every place in flight was released (a release is sent without waiting for its reply)
        await _until(lambda: not _in_flight(direct, prefix + name))
    finally:
        keys = list(direct.scan_iter(match=prefix + "*"))
        if keys:
            direct.delete(*keys)
        direct.close()


async def test_a_server_without_the_scripts_is_served_by_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NOSCRIPT (a new, restarted or flushed server) is answered by EVAL, which caches the script."""
    script = shared.ACQUIRE + f"-- {os.urandom(8).hex()}\n"  # a script this server has never seen
    monkeypatch.setattr(shared, "ACQUIRE", script)
    monkeypatch.setitem(shared.SHAS, script, hashlib.sha1(script.encode()).hexdigest())
    store, clean = _redis_store()
    store.client.setup = ()  # a connection that does not load the scripts: as after a SCRIPT FLUSH
    direct = redis.Redis.from_url(REDIS_URL)
    try:
        assert direct.script_exists(shared.SHAS[script]) == [False]
        app = app_with(tmp_path, store, Limits(scope(), rpm=5))
        answers = [await arequest(app, "POST", "/v1/chat/completions", CHAT) for _ in range(2)]
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["4", "3"]
        assert direct.script_exists(shared.SHAS[script]) == [True] and not store.down
    finally:
        direct.close()
        clean()


async def test_limits_and_the_redis_cache_share_one_connection(tmp_path: Path) -> None:
    """Both features on one Redis: one connection carries the lookups and the scripts, and each
    keeps its own behaviour — hits answered, every request counted, every place given back."""
    from seance.gateway.pipeline.cache import Cache, CacheConfig
    from seance.gateway.pipeline.cache_stores import RedisStore

    prefix, space = f"seance-test:{os.urandom(6).hex()}:", f"seance-test-{os.urandom(6).hex()}"
    limits = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix)
    cache = RedisStore(RedisSettings(REDIS_URL, "test"))
    name = scope()
    upstream: list[UpstreamRequest] = []

    def counted(request: UpstreamRequest) -> MockResponse:
        upstream.append(request)
        return answer(request)

    app, _ = make_app(
        tmp_path, CONFIG, counted, [GiveLimits(Limits(name, rpm=3, parallel=5)), RateLimits(limits),
                                    Cache(CacheConfig("redis", namespace=space), cache)],
    )  # fmt: skip
    direct = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        answers = [await arequest(app, "POST", "/v1/chat/completions", CHAT) for _ in range(4)]
        assert [a.status for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-ratelimit-remaining-requests"] for a in answers[:3]] == ["2", "1", "0"]
        assert len(upstream) == 1  # the first was stored; the next two were hits (still counted)
        assert limits.client._connection is cache._client._connection is not None  # type: ignore[union-attr]
        assert limits.client._connection.users == 2 and not limits.down and not cache.down
        await _until(lambda: not _in_flight(direct, prefix + name))
    finally:
        await cache.close()
        limits.client.close()
        keys = [*direct.scan_iter(match=prefix + "*"), *direct.scan_iter(match=space + ":*")]
        if keys:
            direct.delete(*keys)
        direct.close()


def _in_flight(direct: redis.Redis, key: str) -> int:
    """The places in flight a scope's hash counts (its ring: shared.ACQUIRE)."""
    return sum(int(value or 0) for value in direct.hmget(key, "a0", "a1", "a2"))


async def test_a_place_never_given_back_ends_after_the_parallel_ttl() -> None:
    """A worker that died holding a place: it counts for the parallel TTL, then no more."""
    prefix = f"seance-test:{os.urandom(6).hex()}:"
    store = SharedStore(RedisSettings(REDIS_URL, "test"), prefix=prefix, parallel_ttl=0.4)
    entries = ((scope(), None, None, 1),)
    direct = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        taken = await store.acquire(entries, 0)
        assert taken.admitted and taken.counts[0][3] == 1  # and never released
        began = asyncio.get_running_loop().time()
        refused = await store.acquire(entries, 0)
        assert not refused.admitted and refused.limit == "parallel"
        while not (verdict := await store.acquire(entries, 0)).admitted:
            assert asyncio.get_running_loop().time() - began < 0.7  # by 1.5 times the TTL
            await asyncio.sleep(0.02)
        assert asyncio.get_running_loop().time() - began >= 0.35  # not before the TTL (less the first call)
        store.release_now((store, entries, verdict.counts, 0), 0)
        await _until(lambda: not _in_flight(direct, prefix + entries[0][0]))
        assert 0 < direct.pttl(prefix + entries[0][0]) <= 1000  # the hash goes with its ring
    finally:
        store.client.close()
        keys = list(direct.scan_iter(match=prefix + "*"))
        if keys:
            direct.delete(*keys)
        direct.close()


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
