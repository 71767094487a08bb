"""The response cache hook, in-process over a MockTransport: the same suite on the in-process store
and on the real Redis at 127.0.0.1:6379 (each test under its own random namespace, removed after)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from tests.cuttable_proxy import CuttableProxy
from tests.gateway.asgi_client import KEY, arequest, deployment, make_app
from tests.gateway.cached_gateway import space
from tests.wire import load

import seance.gateway.pipeline.cache
from seance.gateway.app import Gateway
from seance.gateway.config import load_settings
from seance.gateway.context import Caller, RequestContext
from seance.gateway.errors import RateLimited
from seance.gateway.formats.openai import Usage
from seance.gateway.pipeline import Hook
from seance.gateway.pipeline.cache import Cache, CacheConfig
from seance.gateway.pipeline.cache_answers import Entry, assemble
from seance.gateway.pipeline.cache_stores import ENTRY_OVERHEAD, LocalStore, RedisStore, Store
from seance.gateway.shared_state import RedisSettings
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

__all__ = ["space"]  # (a fixture)

REDIS_URL = "redis://127.0.0.1:6379/0"
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}
ANSWER = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
)
STREAM = load("openai/chat-stream-include-usage.httprr.txt")[0].response_body
CONFIG = {
    "model_list": [
        deployment("gpt", "openai/gpt-4o"),
        deployment("emb", "openai/text-embedding-3-small"),
        deployment("instruct", "openai/gpt-3.5-turbo-instruct"),
    ]
}


class Seen(Hook):
    """Keeps the last context, to look at what the after-hooks saw."""

    ctx: RequestContext | None = None

    async def after(self, ctx: RequestContext) -> None:
        self.ctx = ctx


@pytest.fixture(params=["local", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "local":
        yield LocalStore(1 << 20)
        return
    redis_store = RedisStore(RedisSettings(REDIS_URL, "test"))
    yield redis_store
    await redis_store.close()


class Upstream:
    def __init__(self, *answers: MockResponse) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, request: UpstreamRequest) -> MockResponse:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def json_answer(body: bytes = ANSWER) -> MockResponse:
    return MockResponse(200, body)


def sse_answer(body: bytes = STREAM) -> MockResponse:
    return MockResponse(200, [body[i : i + 83] for i in range(0, len(body), 83)], {"content-type": "text/event-stream"})


def app_with(
    tmp_path: Path, store: Store, space: str, upstream: Callable[[UpstreamRequest], Any], **config: Any
) -> tuple[Gateway, Cache, Seen]:
    cache = Cache(CacheConfig("test", namespace=space, **config), store)
    seen = Seen()
    app, _ = make_app(tmp_path, CONFIG, upstream, [seen, cache])
    return app, cache, seen


async def post(app: Gateway, body: Any, path: str = "/v1/chat/completions", **headers: str) -> Any:
    return await arequest(app, "POST", path, body, headers)


def content_of_stream(body: bytes) -> tuple[str, dict[str, Any] | None]:
    text, usage = [], None
    for event in body.split(b"\n\n"):
        if event.startswith(b"data: {"):
            chunk = orjson.loads(event[6:])
            usage = chunk.get("usage") or usage
            for choice in chunk["choices"]:
                text.append(choice["delta"].get("content") or "")
    return "".join(text), usage


async def test_a_hit_answers_the_same_body_and_usage_without_the_provider(
    tmp_path: Path, store: Store, space: str
) -> None:
    upstream = Upstream(json_answer())
    app, _, seen = app_with(tmp_path, store, space, upstream)
    first = await post(app, CHAT)
    assert seen.ctx is not None and not seen.ctx.cache_hit
    second = await post(app, CHAT)
    assert first.status == second.status == 200 and upstream.calls == 1
    assert second.body == first.body == ANSWER
    key = first.headers["x-litellm-cache-key"]
    assert len(key) == 64 and second.headers["x-litellm-cache-key"] == key
    ctx = seen.ctx
    assert ctx is not None and ctx.cache_hit and ctx.cost is None and ctx.deployment is None
    assert ctx.usage is not None and (ctx.usage.prompt_tokens, ctx.usage.completion_tokens) == (7, 3)
    assert second.headers["x-litellm-response-cost"] == "0.0"


async def test_the_key_is_what_changes_the_answer(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    key = (await post(app, CHAT)).headers["x-litellm-cache-key"]
    same = [
        {**CHAT, "user": "someone"},
        {**CHAT, "metadata": {"trace": "x"}},
        {"temperature": 0.2, "messages": [{"content": "hi", "role": "user"}], "model": "gpt"},  # key order
    ]
    for body in same:
        answer = await post(app, body)
        assert answer.headers["x-litellm-cache-key"] == key and answer.body == ANSWER
    assert upstream.calls == 1
    different = [
        {**CHAT, "temperature": 0.3},
        {**CHAT, "messages": [{"role": "user", "content": "hello"}]},
        {**CHAT, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {**CHAT, "model": "instruct"},  # another model group
    ]
    keys = {(await post(app, body)).headers["x-litellm-cache-key"] for body in different}
    assert len(keys) == 4 and key not in keys and upstream.calls == 5


async def test_no_cache_asks_the_provider_and_still_stores(tmp_path: Path, store: Store, space: str) -> None:
    fresh = ANSWER.replace(b'"yo"', b'"fresh"')
    upstream = Upstream(json_answer(), json_answer(fresh), json_answer(b'{"never": "asked"}'))
    app, _, _ = app_with(tmp_path, store, space, upstream)
    assert (await post(app, CHAT)).body == ANSWER
    assert (await post(app, {**CHAT, "cache": {"no-cache": True}})).body == fresh
    assert (await post(app, CHAT)).body == fresh  # the fresh answer replaced the old one
    assert (await post(app, CHAT, **{"cache-control": "no-cache"})).body == b'{"never": "asked"}'
    assert upstream.calls == 3


async def test_no_store_is_not_stored(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    await post(app, {**CHAT, "cache": {"no-store": True}})
    await post(app, CHAT, **{"Cache-Control": "no-store"})
    assert upstream.calls == 2
    await post(app, CHAT)
    await post(app, CHAT)
    assert upstream.calls == 3


async def test_ttl_expires(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    await post(app, {**CHAT, "cache": {"ttl": 0.2}})
    await post(app, CHAT)
    assert upstream.calls == 1
    await asyncio.sleep(0.3)
    await post(app, CHAT)
    assert upstream.calls == 2


async def test_s_maxage_refuses_older_entries(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(json_answer())
    app, cache, _ = app_with(tmp_path, store, space, upstream)
    now = [1000.0]
    cache.clock = lambda: now[0]
    await post(app, CHAT)
    now[0] += 30
    await post(app, {**CHAT, "cache": {"s-maxage": 10}})
    assert upstream.calls == 2  # stored 30 s ago: too old; the new answer is stored at 1030
    now[0] += 5
    await post(app, {**CHAT, "cache": {"s-maxage": 10}})
    await post(app, CHAT, **{"cache-control": "s-maxage=10"})
    assert upstream.calls == 2


async def test_a_request_namespace_is_its_own(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    await post(app, CHAT)
    await post(app, {**CHAT, "cache": {"namespace": space + "-other"}})
    await post(app, {**CHAT, "cache": {"namespace": space + "-other"}})
    assert upstream.calls == 2
    if isinstance(store, RedisStore):
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(*client.scan_iter(match=space + "-other:*"))
        client.close()


class TeamAuth(Hook):
    """A stand-in for virtual keys: the x-team header (read from the request's credential for the
    test: "team-a" / "team-b" / "") names the caller's team."""

    async def on_request(self, ctx: RequestContext) -> None:
        team = ctx.credential.decode().removeprefix("Bearer ")
        ctx.caller = Caller("virtual_key", key_hash="0" * 64, team_id=team or None)


async def test_one_team_never_gets_another_teams_answer(tmp_path: Path, store: Store, space: str) -> None:
    team_b = ANSWER.replace(b'"yo"', b'"for team b"')
    upstream = Upstream(json_answer(), json_answer(team_b), json_answer(b'{"no": "team"}'))
    cache = Cache(CacheConfig("test", namespace=space), store)
    app, _ = make_app(tmp_path, CONFIG, upstream, [])
    app.pipeline = type(app.pipeline)([TeamAuth(), cache])  # the key is the team: no master key check
    a = await post(app, CHAT, authorization="Bearer team-a")
    b = await post(app, CHAT, authorization="Bearer team-b")
    nobody = await post(app, CHAT, authorization="Bearer ")
    assert (a.body, b.body, nobody.body) == (ANSWER, team_b, b'{"no": "team"}') and upstream.calls == 3
    assert len({a.headers["x-litellm-cache-key"], b.headers["x-litellm-cache-key"]}) == 2
    assert (await post(app, CHAT, authorization="Bearer team-b")).body == team_b
    assert (await post(app, CHAT, authorization="Bearer team-a")).body == ANSWER
    assert upstream.calls == 3


class KeptTeamAuth(Hook):
    """TeamAuth with one Caller per team, kept, as the key cache keeps a virtual key's."""

    def __init__(self) -> None:
        self.callers: dict[str, Caller] = {}

    async def on_request(self, ctx: RequestContext) -> None:
        team = ctx.credential.decode().removeprefix("Bearer ")
        ctx.caller = self.callers.setdefault(team, Caller("virtual_key", key_hash="0" * 64, team_id=team))


async def test_a_repeated_hit_is_keyed_from_its_bytes_for_its_caller_only(
    tmp_path: Path, store: Store, space: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    team_b = ANSWER.replace(b'"yo"', b'"for team b"')
    upstream = Upstream(json_answer(), json_answer(team_b))
    cache = Cache(CacheConfig("test", namespace=space), store)
    app, _ = make_app(tmp_path, CONFIG, upstream, [])
    app.pipeline = type(app.pipeline)([KeptTeamAuth(), cache])
    keyed = []
    real_key_of = seance.gateway.pipeline.cache.key_of
    monkeypatch.setattr(seance.gateway.pipeline.cache, "key_of", lambda *a: keyed.append(a) or real_key_of(*a))
    miss = await post(app, CHAT, authorization="Bearer team-a")
    hit = await post(app, CHAT, authorization="Bearer team-a")
    assert len(keyed) == 2 and upstream.calls == 1
    again = await post(app, CHAT, authorization="Bearer team-a")  # the same bytes from the same caller
    assert len(keyed) == 2 and again.body == hit.body == miss.body == ANSWER
    keys = {answer.headers["x-litellm-cache-key"] for answer in (miss, hit, again)}
    assert len(keys) == 1
    # the same bytes from another team: keyed again, its own answer
    other = await post(app, CHAT, authorization="Bearer team-b")
    assert len(keyed) == 3 and other.body == team_b and upstream.calls == 2
    assert other.headers["x-litellm-cache-key"] not in keys
    # with a cache control in the body: keyed from the body, as ever
    await post(app, {**CHAT, "cache": {"no-store": True}}, authorization="Bearer team-a")
    assert len(keyed) == 4


async def test_what_is_remembered_of_repeated_bodies_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seance.gateway.pipeline.cache, "REPEATED_BYTES", 1000)
    monkeypatch.setattr(seance.gateway.pipeline.cache, "REPEATED_MAX_BYTES", 400)
    upstream = Upstream(json_answer())
    app, cache, _ = app_with(tmp_path, LocalStore(1 << 20), "bounded", upstream)

    def body(size: int, n: int) -> dict[str, Any]:
        made = {**CHAT, "messages": [{"role": "user", "content": str(n)}]}
        made["messages"][0]["content"] += "x" * (size - len(orjson.dumps(made)))
        assert len(orjson.dumps(made)) == size
        return made

    for n in range(4):  # a miss, then a hit that is remembered: 300 bytes each
        await post(app, body(300, n))
        await post(app, body(300, n))
        assert cache._repeated_bytes == 300 * (n + 1 if n < 3 else 1)  # the fourth starts again
    assert len(cache._repeated) == 1
    await post(app, body(500, 9))
    await post(app, body(500, 9))  # a hit, too large to remember
    assert len(cache._repeated) == 1 and cache._repeated_bytes == 300


async def test_the_models_of_a_caching_group_share_their_answers(tmp_path: Path, store: Store, space: str) -> None:
    other = ANSWER.replace(b'"yo"', b'"not shared"')
    upstream = Upstream(json_answer(), json_answer(other))
    config = {
        "model_list": [*CONFIG["model_list"], deployment("gpt-azure", "openai/gpt-4o"), deployment("mini", "openai/m")],
        "router_settings": {"caching_groups": [["gpt-azure", "gpt"]]},
    }
    cache = Cache(CacheConfig("test", namespace=space), store)
    app, _ = make_app(tmp_path, config, upstream, [cache])
    first = await post(app, CHAT)
    shared = await post(app, {**CHAT, "model": "gpt-azure"})
    assert shared.body == first.body == ANSWER and upstream.calls == 1
    assert shared.headers["x-litellm-cache-key"] == first.headers["x-litellm-cache-key"]
    alone = await post(app, {**CHAT, "model": "mini"})
    assert alone.body == other and upstream.calls == 2
    # a reload that ends the group: each model keys its own again
    await app.reload(load_settings_of(tmp_path, {**config, "router_settings": {}}))
    assert (await post(app, {**CHAT, "model": "gpt-azure"})).body == other and upstream.calls == 3


def load_settings_of(tmp_path: Path, config: dict[str, Any]) -> Any:
    path = tmp_path / "reloaded.yaml"
    path.write_bytes(orjson.dumps(config))
    return load_settings(path, {"LITELLM_MASTER_KEY": KEY})


async def test_a_stored_answer_is_replayed_to_a_stream(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(json_answer())
    app, _, seen = app_with(tmp_path, store, space, upstream)
    await post(app, CHAT)
    plain = await post(app, {**CHAT, "stream": True})
    with_usage = await post(app, {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert upstream.calls == 1
    assert plain.headers["content-type"].startswith("text/event-stream")
    assert content_of_stream(plain.body) == ("yo", None)
    assert plain.body.endswith(b"data: [DONE]\n\n")
    assert content_of_stream(with_usage.body) == (
        "yo",
        {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    )
    assert seen.ctx is not None and seen.ctx.cache_hit and seen.ctx.usage is not None


async def test_a_stored_stream_answers_streams_and_plain_requests(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(sse_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    first = await post(app, body)
    text, usage = content_of_stream(first.body)
    again = await post(app, body)
    plain = await post(app, CHAT)
    assert upstream.calls == 1
    assert content_of_stream(again.body) == (text, usage) and text
    answer = plain.json()
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"] == text
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert usage is not None and answer["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert answer["usage"]["completion_tokens"] == usage["completion_tokens"]


async def test_a_stream_cut_short_or_an_error_is_not_stored(tmp_path: Path, store: Store, space: str) -> None:
    cut = MockResponse(200, [STREAM[: len(STREAM) // 2]], {"content-type": "text/event-stream"})
    failed = MockResponse(500, b'{"error": {"message": "down"}}')
    upstream = Upstream(cut, failed, json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    await post(app, {**CHAT, "stream": True})
    assert (await post(app, {**CHAT, "num_retries": 0})).status >= 500
    assert (await post(app, CHAT)).body == ANSWER
    assert upstream.calls == 3


async def test_embeddings_and_completions_are_cached(tmp_path: Path, store: Store, space: str) -> None:
    vectors = [{"object": "embedding", "index": 0, "embedding": [0.5]}]
    embedding = orjson.dumps({"object": "list", "data": vectors, "usage": {"prompt_tokens": 2, "total_tokens": 2}})
    choice = {"index": 0, "text": "ok", "logprobs": None, "finish_reason": "stop"}
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    text = orjson.dumps({"id": "c", "object": "text_completion", "created": 1, "model": "m", "choices": [choice],
                         "usage": usage})  # fmt: skip
    upstream = Upstream(json_answer(embedding), json_answer(text))
    app, _, _ = app_with(tmp_path, store, space, upstream)
    for _ in range(2):
        assert (await post(app, {"model": "emb", "input": "x"}, "/v1/embeddings")).body == embedding
    assert upstream.calls == 1
    for _ in range(2):
        assert (await post(app, {"model": "instruct", "prompt": "x"}, "/v1/completions")).body == text
    streamed = await post(app, {"model": "instruct", "prompt": "x", "stream": True}, "/v1/completions")
    assert upstream.calls == 2
    texts = [
        orjson.loads(e[6:])["choices"][0]["text"] for e in streamed.body.split(b"\n\n") if e.startswith(b"data: {")
    ]
    assert "".join(texts) == "ok"


async def test_supported_call_types_limit_what_is_cached(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream, endpoints=frozenset({"embedding"}))
    first = await post(app, CHAT)
    await post(app, CHAT)
    assert upstream.calls == 2 and "x-litellm-cache-key" not in first.headers


async def test_mocked_answers_are_neither_served_nor_stored(tmp_path: Path, store: Store, space: str) -> None:
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    mocked = await post(app, {**CHAT, "mock_response": "a mock"})
    assert b"a mock" in mocked.body and "x-litellm-cache-key" not in mocked.headers
    assert (await post(app, CHAT)).body == ANSWER and upstream.calls == 1


@pytest.mark.parametrize(
    ("cache", "says"),
    [
        ("yes", "cache must be an object"),
        ({"ttl": -1}, "cache.ttl must be a positive number"),
        ({"ttl": True}, "cache.ttl must be a positive number"),
        ({"s-maxage": False}, "cache.s-maxage must be a number of seconds"),
        ({"no-store": "please"}, "cache.no-store must be true or false"),
        ({"namespace": ""}, "cache.namespace must be a string"),
        ({"nocache": True}, "cache.nocache is not a cache control"),
    ],
)
async def test_bad_cache_controls_are_a_400(tmp_path: Path, cache: Any, says: str) -> None:
    app, _, _ = app_with(tmp_path, LocalStore(1 << 20), "ns", Upstream(json_answer()))
    answer = await post(app, {**CHAT, "cache": cache})
    assert answer.status == 400 and says in answer.json()["error"]["message"]
    assert answer.json()["error"]["param"] == "cache"


async def test_redis_and_local_give_the_same_answers(tmp_path: Path, space: str) -> None:
    bodies = [CHAT, {**CHAT, "stream": True}, {**CHAT, "stream": True, "stream_options": {"include_usage": True}}]
    results = []
    for store in (LocalStore(1 << 20), RedisStore(RedisSettings(REDIS_URL, "test"))):
        upstream = Upstream(json_answer())
        app, _, _ = app_with(tmp_path, store, space + ("-local" if isinstance(store, LocalStore) else ""), upstream)
        results.append([((a := await post(app, body)).status, a.body) for body in [CHAT, *bodies]])
        assert upstream.calls == 1
        if isinstance(store, RedisStore):
            await store.close()
    local, shared = results
    assert local == shared


# --- Redis down, and back ------------------------------------------------------------------------


async def test_redis_down_means_uncached_not_failed_and_back_when_it_returns(
    tmp_path: Path, space: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = CuttableProxy(6379)
    await proxy.start()
    store = RedisStore(RedisSettings(f"redis://127.0.0.1:{proxy.port}/0", "test"))
    store.RETRY_AFTER = 0.0
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    try:
        await post(app, CHAT)
        await post(app, CHAT)
        assert upstream.calls == 1
        await proxy.cut()
        with caplog.at_level(logging.WARNING, "seance.gateway"):
            for _ in range(3):
                answer = await post(app, CHAT)
                assert answer.status == 200 and answer.body == ANSWER
        assert upstream.calls == 4
        down = [r for r in caplog.records if "does not answer" in r.getMessage()]
        assert len(down) == 1 and "127.0.0.1" in down[0].getMessage()
        await proxy.start()
        with caplog.at_level(logging.WARNING, "seance.gateway"):
            await post(app, CHAT)
        assert upstream.calls == 4  # the entry stored before the cut is served again
        assert any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        await store.close()
        if proxy.server is not None:
            await proxy.cut()


# --- the in-process store ------------------------------------------------------------------------


def entry(body: bytes) -> Entry:
    return Entry(0.0, None, body)


async def test_the_local_store_is_bounded_in_bytes_least_recently_used_out() -> None:
    now = [0.0]
    per = 100 + 1 + ENTRY_OVERHEAD  # a 100-byte body under a one-letter key, and its bookkeeping
    local = LocalStore(16 * per, clock=lambda: now[0])
    for key in "abcd":
        local.put(key, entry(key.encode() * 100), 60)
    await local.get("a")  # a is now the most recent
    for key in "efghijklmnopq":
        local.put(key, entry(key.encode() * 100), 60)
    assert local.size == 16 * per and len(local) == 16
    assert await local.get("b") is None and await local.get("a") is not None
    local.put("big", entry(b"x" * (per + 1)), 60)  # larger than a sixteenth: not kept
    assert await local.get("big") is None
    local.put("short", entry(b"s"), 5)
    now[0] = 5
    assert await local.get("short") is None and local.size <= 16 * per


async def test_the_local_store_counts_what_an_entry_holds_beside_its_body() -> None:
    """Small answers: the bound holds the memory, not only the bodies' bytes (the Entry, its
    usage and the LRU's bookkeeping weigh more than a short answer)."""
    local = LocalStore(10 * (1 + 2 + ENTRY_OVERHEAD))
    for n in range(1000):
        local.put(f"{n:02d}"[-2:], entry(b"x"), 60)
    assert len(local) == 10


async def test_the_local_store_keeps_the_entry_itself() -> None:
    local = LocalStore(16000)
    kept = entry(b"x" * 10)
    local.put("k", kept, 60)
    local.put("k", entry(b"y" * 20), 60)  # the same key again: replaced, counted once
    assert local.size == 20 + 1 + ENTRY_OVERHEAD and len(local) == 1
    local.put("k", kept, 60)
    assert await local.get("k") is kept and local.size == 10 + 1 + ENTRY_OVERHEAD


async def test_messages_are_cached_streamed_or_not(tmp_path: Path, store: Store, space: str) -> None:
    """Anthropic's /v1/messages: a stream is stored as the answer it amounts to and replayed as
    events; a plain request is answered from it too, and a stored plain answer replays as a stream."""
    streamed = load("anthropic/messages-stream-tools.yaml")[0].response_body
    upstream = Upstream(sse_answer(streamed), json_answer(load("anthropic/messages-nonstream.yaml")[0].response_body))
    cache = Cache(CacheConfig("test", namespace=space), store)
    config = {"model_list": [deployment("claude", "anthropic/claude-haiku-4-5")]}
    app, _ = make_app(tmp_path, config, upstream, [cache])
    body = {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "weather?"}], "stream": True}
    first = await post(app, body, "/v1/messages")
    assert first.status == 200 and upstream.calls == 1
    again = await post(app, body, "/v1/messages")
    plain = await post(app, {**body, "stream": False}, "/v1/messages")
    assert upstream.calls == 1 and again.headers["content-type"].startswith("text/event-stream")
    assert again.headers["x-litellm-cache-key"] == first.headers["x-litellm-cache-key"]
    events = [data for part in again.body.split(b"\n\n") for data in part.split(b"\ndata: ")[1:]]
    assert assemble("messages", [again.body], None) == assemble("messages", [first.body], None) is not None
    assert orjson.loads(events[-1]) == {"type": "message_stop"}
    answer = plain.json()
    assert answer["type"] == "message" and [b["type"] for b in answer["content"]] == ["tool_use"]
    assert answer["content"][0]["input"] and answer["stop_reason"] == "tool_use"
    other = {"model": "claude", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}
    assert (await post(app, other, "/v1/messages")).status == 200 and upstream.calls == 2  # stored plain,
    replayed = await post(app, {**other, "stream": True}, "/v1/messages")  # then replayed as a stream
    assert upstream.calls == 2 and replayed.body.startswith(b"event: message_start\n")


# --- what is stored, and how ---------------------------------------------------------------------


def test_an_entry_keeps_the_whole_usage_and_reads_the_older_two_counts() -> None:
    usage = Usage(100, 20, cached_tokens=64, cache_creation_tokens=8, reasoning_tokens=5)
    decoded = Entry.decode(Entry(12.5, usage, ANSWER).encode())
    assert decoded is not None and (decoded.stored_at, decoded.usage, decoded.body) == (12.5, usage, ANSWER)
    older = Entry.decode(b'{"t":1.0,"u":[7,3]}\n' + ANSWER)  # as the previous version wrote it
    assert older is not None and older.usage == Usage(7, 3)
    assert Entry.decode(b'{"t":1.0}\n' + ANSWER) is None and Entry.decode(b"no head") is None


async def test_a_local_hit_serves_the_stored_bytes_and_builds_its_answer_once(tmp_path: Path) -> None:
    store = LocalStore(1 << 20)
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, "ns", upstream)
    await post(app, CHAT)
    (entry,) = store._entries.values()
    assert entry.body == ANSWER and entry.made is None
    assert [(await post(app, CHAT)).body for _ in range(2)] == [ANSWER, ANSWER]
    plain = entry.made and entry.made[None]
    streamed = await post(app, {**CHAT, "stream": True})
    assert entry.made is not None and entry.made[None] is plain and set(entry.made) == {None, False}
    assert content_of_stream(streamed.body) == ("yo", None) and upstream.calls == 1


async def test_a_redis_write_does_not_wait_and_the_next_lookup_sees_it(space: str) -> None:
    store = RedisStore(RedisSettings(REDIS_URL, "test"))
    try:
        store.put(f"{space}:first", Entry(1.0, None, b"before any connection"), 60)  # connects, then writes
        assert store._writing
        await asyncio.gather(*store._writing)
        assert (await store.get(f"{space}:first")) == Entry(1.0, None, b"before any connection")
        for n in range(20):  # connected: sent behind the calls before it, nothing awaited
            store.put(f"{space}:{n}", Entry(2.0, Usage(n, 1), b"answer %d" % n), 60)
        assert not store._writing
        found = await asyncio.gather(*(store.get(f"{space}:{n}") for n in range(20)))
        assert [entry.body if entry else None for entry in found] == [b"answer %d" % n for n in range(20)]
        store.put(f"{space}:gone", Entry(1.0, None, b"short"), 0.05)
        await asyncio.sleep(0.1)
        assert await store.get(f"{space}:gone") is None
    finally:
        await store.close()


async def test_a_redis_hit_of_the_same_bytes_reuses_its_entry_and_answers(tmp_path: Path, space: str) -> None:
    store = RedisStore(RedisSettings(REDIS_URL, "test"))
    upstream = Upstream(json_answer())
    app, _, _ = app_with(tmp_path, store, space, upstream)
    direct = redis.Redis.from_url(REDIS_URL)
    try:
        await post(app, CHAT)  # a miss, stored: remembered as written
        (key,) = list(store._known)
        first = store._known[key]
        assert [(await post(app, CHAT)).body for _ in range(2)] == [ANSWER, ANSWER]
        assert store._known[key] is first and first.made is not None and set(first.made) == {None}
        streamed = await post(app, {**CHAT, "stream": True})
        assert content_of_stream(streamed.body) == ("yo", None) and set(first.made) == {None, False}
        # another writer (a replica) stores other bytes under the key: read and parsed anew
        other = Entry(first.stored_at, first.usage, ANSWER.replace(b'"yo"', b'"hey"'))
        direct.set(key, other.encode(), px=60_000)
        assert content_of_stream((await post(app, {**CHAT, "stream": True})).body) == ("hey", None)
        assert store._known[key] is not first and upstream.calls == 1
    finally:
        direct.close()
        await store.close()


# --- one round trip: the Redis lookup goes out before the hooks ahead of the cache wait -----------


class Ahead(Hook):
    """A hook ahead of the cache whose `before` waits (as the rate limits' does on Redis): notes
    whether the cache's lookup was already on its way then, and refuses when told to."""

    def __init__(self) -> None:
        self.in_flight: list[bool] = []
        self.refuse = False

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> None:
        started = ctx.cache_lookup
        self.in_flight.append(started is not None and started[2] is not None)
        await asyncio.sleep(0)
        if self.refuse:
            raise RateLimited("over the limit")


async def test_the_redis_lookup_shares_the_round_trip_of_the_hooks_ahead(
    tmp_path: Path, space: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore(RedisSettings(REDIS_URL, "test"))
    ahead = Ahead()
    upstream = Upstream(json_answer())
    cache = Cache(CacheConfig("test", namespace=space), store)
    app, _ = make_app(tmp_path, CONFIG, upstream, [ahead, cache])
    try:
        first, second = await post(app, CHAT), await post(app, CHAT)
        assert first.status == second.status == 200 and upstream.calls == 1  # a miss, stored; a hit
        # the first request connects on its own (nothing to send early yet); from then on the
        # lookup is sent before the hook ahead waits
        assert ahead.in_flight == [False, True]
        ahead.refuse = True
        with caplog.at_level(logging.ERROR):
            assert (await post(app, CHAT)).status == 429
            await store.close()  # the lookup nobody awaited fails with its connection: not reported
            await asyncio.sleep(0.05)
        assert ahead.in_flight[-1] is True and not caplog.records
    finally:
        await store.close()
