"""LiteLLM's /cache/* endpoints on the real gateway, over the in-process cache and the real Redis:
what a LiteLLM admin's curl calls get, and what they do to the cache the next request meets."""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx2 as httpx
import pytest
import redis
from tests.gateway.cached_gateway import REDIS_URL, space, start, upstream, wait_stored
from tests.gateway.conftest import GatewayFactory, Running, deployment
from tests.wire import ReplayUpstream, load

__all__ = ["space", "upstream"]  # (fixtures)

CHAT = load("openai/chat-nonstream.httprr.txt")[0]


def ask(http: httpx.Client, upstream: ReplayUpstream, text: str) -> str:
    """One chat request (a reply is queued upstream for it, used only on a miss): its cache key."""
    upstream.add("/v1/chat/completions", CHAT)
    answer = http.post("/v1/chat/completions", json={"model": "gpt", "messages": [{"role": "user", "content": text}]})
    assert answer.status_code == 200, answer.text
    return answer.headers["x-litellm-cache-key"]


def stored(kind: str, space: str, key: str) -> None:
    if kind == "redis":
        wait_stored(space, key)


@pytest.fixture(params=["local", "redis"])
def cached(
    request: pytest.FixtureRequest, gateway: GatewayFactory, upstream: ReplayUpstream, space: str
) -> tuple[Running, str]:
    """The gateway with each kind of cache, and the kind."""
    return start(gateway, upstream, space, request.param), request.param


def test_delete_and_flushall_send_the_next_request_to_the_provider(
    cached: tuple[Running, str], upstream: ReplayUpstream, space: str
) -> None:
    served, kind = cached
    with served.http() as http:
        first, second = ask(http, upstream, "one"), ask(http, upstream, "two")
        stored(kind, space, first)
        stored(kind, space, second)
        assert ask(http, upstream, "one") == first and len(upstream.requests) == 2  # a hit

        deleted = http.post("/cache/delete", json={"keys": [first, "no-such-key"]})
        assert deleted.status_code == 200 and deleted.json() == {"status": "success", "deleted": 1}
        as_redis_names_it = f"{space}:{second}"
        assert http.post("/cache/delete", json={"keys": [as_redis_names_it]}).json()["deleted"] == 1
        ask(http, upstream, "two")
        stored(kind, space, second)
        ask(http, upstream, "one")
        assert len(upstream.requests) == 4  # both asked again
        stored(kind, space, first)

        flushed = http.post("/cache/flushall")
        assert flushed.status_code == 200 and flushed.json() == {"status": "success", "deleted": 2}
        ask(http, upstream, "one")
        ask(http, upstream, "two")
        assert len(upstream.requests) == 6


def test_flushall_leaves_what_else_shares_the_redis(
    gateway: GatewayFactory, upstream: ReplayUpstream, space: str
) -> None:
    """LiteLLM's flushall empties the whole server; here the rate limits' counters (and anything
    else there) stay, and a namespace a body names is flushed instead of the configured one."""
    served = start(gateway, upstream, space, "redis")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.set(f"{space}-other:kept", b"1", ex=60)
        client.set(f"{space}:a*b", b"1", ex=60)  # a glob character in a key of the namespace
        client.set(f"{space}-named:x", b"1", ex=60)
        client.set(f"{space}[x]:k", b"1", ex=60)  # a namespace with a glob's characters: taken literally
        client.set(f"{space}x:k", b"1", ex=60)  # what "[x]" would match as a glob
        with served.http() as http:
            key = ask(http, upstream, "one")
            stored("redis", space, key)
            flushed = http.post("/cache/flushall")
            assert flushed.json() == {"status": "success", "deleted": 2}
            assert http.post("/cache/flushall", json={"namespace": f"{space}-named"}).json()["deleted"] == 1
            assert http.post("/cache/flushall", json={"namespace": f"{space}[x]"}).json()["deleted"] == 1
            refused = http.post("/cache/flushall", json={"namespace": 7})
            assert refused.status_code == 400 and refused.json()["error"]["param"] == "namespace"
        assert client.exists(f"{space}-other:kept") and client.exists(f"{space}x:k")
        assert not client.exists(f"{space}:{key}") and not client.exists(f"{space}[x]:k")
    finally:
        client.close()


def test_ping_says_how_the_cache_is_set_up(cached: tuple[Running, str], space: str) -> None:
    served, kind = cached
    with served.http() as http:
        answer = http.get("/cache/ping")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["status"] == "healthy" and found["cache_type"] == kind
    params = json.loads(found["litellm_cache_params"])  # a JSON string, as LiteLLM sends it
    assert params["namespace"] == space and params["type"] == kind
    if kind == "redis":
        assert found["ping_response"] is True and found["set_cache_response"] == "success"
        assert found["health_check_cache_params"] == params and "127.0.0.1:6379" in params["redis"]
    else:
        assert params["max_size_bytes"] == 64 * 2**20 and "entries" in found


def test_a_redis_that_does_not_answer_is_unhealthy_and_its_password_is_not_shown(
    gateway: GatewayFactory, upstream: ReplayUpstream, space: str
) -> None:
    port = _closed_port()
    served = start(gateway, upstream, space, "redis", url=f"redis://:s3cret-pw@127.0.0.1:{port}/0")
    with served.http() as http:
        pinged = http.get("/cache/ping")
        flushed = http.post("/cache/flushall")
        info = http.get("/cache/redis/info")
    for answer in (pinged, flushed, info):
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["message"].startswith("Service Unhealthy")
        assert "s3cret" not in answer.text
    assert "s3cret" not in served.output()


def test_redis_info(gateway: GatewayFactory, upstream: ReplayUpstream, space: str) -> None:
    served = start(gateway, upstream, space, "redis")
    with served.http() as http:
        answer = http.get("/cache/redis/info")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["info"]["redis_version"] and found["num_clients"] >= 1
    assert len(found["clients"]) == found["num_clients"]


def test_roles_and_mistakes(gateway: GatewayFactory, upstream: ReplayUpstream, space: str) -> None:
    """An admin viewer pings but does not delete; an internal user does neither; a body without
    keys, and the Redis-only info of a local cache, are 400s saying why."""
    served = start(gateway, upstream, space, "local")
    with served.http() as http:
        keys = {}
        for role in ("proxy_admin_viewer", "internal_user"):
            made = http.post("/user/new", json={"user_id": f"u-{role}", "user_role": role})
            assert made.status_code == 200, made.text
            keys[role] = {"authorization": f"Bearer {made.json()['key']}"}
        assert http.get("/cache/ping", headers=keys["proxy_admin_viewer"]).status_code == 200
        refused = http.post("/cache/delete", json={"keys": ["k"]}, headers=keys["proxy_admin_viewer"])
        assert refused.status_code == 403 and "proxy_admin_viewer" in refused.json()["error"]["message"]
        assert http.get("/cache/ping", headers=keys["internal_user"]).status_code == 403
        assert http.post("/cache/flushall", headers=keys["internal_user"]).status_code == 403
        assert http.get("/cache/ping", headers={"authorization": "Bearer sk-nope"}).status_code == 401

        for body in ({}, {"keys": "k"}, {"keys": []}, {"keys": [3]}):
            answer = http.post("/cache/delete", json=body)
            assert answer.status_code == 400 and answer.json()["error"]["param"] == "keys", body
        info = http.get("/cache/redis/info")
        assert info.status_code == 400 and "local does not support redis info" in info.json()["error"]["message"]


def test_an_in_process_cache_of_several_workers_is_not_half_flushed(
    gateway: GatewayFactory, upstream: ReplayUpstream, space: str
) -> None:
    served = start(gateway, upstream, space, "local", "--workers", "2")
    with served.http() as http:
        assert http.get("/cache/ping").status_code == 200
        for path, body in (("/cache/flushall", None), ("/cache/delete", {"keys": ["k"]})):
            answer = http.post(path, json=body)
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "per_worker_cache"
            message = answer.json()["error"]["message"]
            assert "2 workers" in message and "type redis" in message


def test_without_a_cache_or_a_database(gateway: GatewayFactory, upstream: ReplayUpstream) -> None:
    """No cache configured: 503, as LiteLLM answers. Without the database (--no-db) the cache's
    endpoints still answer the master key."""
    config: dict[str, Any] = {"model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")]}
    served = gateway(config)
    with served.http() as http:
        answer = http.get("/cache/ping")
    assert answer.status_code == 503 and "Cache not initialized" in answer.json()["error"]["message"]

    config["litellm_settings"] = {"cache": True, "cache_params": {"type": "local"}}
    bare = gateway(config, args=("--no-db",))
    with bare.http() as http:
        assert http.get("/cache/ping").json()["status"] == "healthy"
        assert http.post("/cache/flushall").json() == {"status": "success", "deleted": 0}
        assert http.get("/cache/ping", headers={"authorization": "Bearer sk-virtual"}).status_code == 401
        assert http.post("/key/generate", json={}).status_code == 501


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
