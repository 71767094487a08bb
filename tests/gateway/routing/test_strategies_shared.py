"""Deployments' rpm/tpm with enable_pre_call_checks, shared through the real Redis on 127.0.0.1:6379
by two gateways (as two replicas, or two workers, would): a provider's quota is one quota. Redis
unreachable: each counts on its own, after one WARNING, and no request fails for it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from tests.gateway.asgi_client import arequest, make_app
from tests.gateway.conftest import GatewayFactory
from tests.gateway.pipeline.test_limits import REDIS_URL
from tests.gateway.pipeline.test_limits_server import _burst

from seance.gateway.app import Gateway
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse

CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
# 10 prompt + 5 completion tokens an answer
ANSWER = (
    b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}'
)
STREAM = [
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,'
    b'"delta":{"content":"yo"},"finish_reason":null}]}\n\n',
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}\n\n',
    b"data: [DONE]\n\n",
]


def answer(request: UpstreamRequest) -> MockResponse:
    if orjson.loads(request.body or b"{}").get("stream"):
        return MockResponse(200, list(STREAM), {"content-type": "text/event-stream"})
    return MockResponse(200, ANSWER)


def replicas(tmp_path: Path, limits: list[dict[str, Any]], redis_url: str = REDIS_URL) -> tuple[Gateway, Gateway]:
    """Two gateways of one config (deployments with ids of their own: Redis keeps a window's counts
    for a minute, across runs)."""
    run = uuid.uuid4().hex[:12]
    model_list = [
        {"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "api_base": f"http://up{i}.test/v1",
         "api_key": "sk-up", **limit}, "model_info": {"id": f"{run}-{i}"}}
        for i, limit in enumerate(limits)
    ]  # fmt: skip
    config = {"model_list": model_list, "router_settings": {"enable_pre_call_checks": True, "num_retries": 0}}
    made = []
    for name in ("one", "two"):
        folder = tmp_path / name
        folder.mkdir()
        app, _ = make_app(folder, config, answer, env={"REDIS_URL": redis_url})
        made.append(app)
    return made[0], made[1]


def _forget(apps: tuple[Gateway, Gateway]) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for app in apps:
        for deployment in app.deployments.all():
            client.delete(f"seance:rl:deployment:{deployment.id}")
    client.close()


async def test_two_gateways_hold_a_deployment_to_one_rpm(tmp_path: Path) -> None:
    apps = replicas(tmp_path, [{"rpm": 3}, {"rpm": 2}])
    try:
        statuses = []
        for i in range(8):  # alternately: each alone would admit all 5 of the group's minute
            statuses.append((await arequest(apps[i % 2], "POST", "/v1/chat/completions", CHAT)).status)
        assert statuses == [200] * 5 + [429] * 3
        refused = await arequest(apps[0], "POST", "/v1/chat/completions", CHAT)
        error = refused.json()["error"]
        assert refused.status == 429 and error["code"] == "no_deployments_available", error
        assert 1 <= int(refused.headers["retry-after"]) <= 60
    finally:
        _forget(apps)


async def test_a_burst_across_both_admits_the_limit_exactly(tmp_path: Path) -> None:
    apps = replicas(tmp_path, [{"rpm": 10}])
    try:
        answers = await asyncio.gather(
            *(arequest(apps[i % 2], "POST", "/v1/chat/completions", CHAT) for i in range(40))
        )
        assert sorted(a.status for a in answers) == [200] * 10 + [429] * 30
    finally:
        _forget(apps)


@pytest.mark.parametrize("stream", [False, True])
async def test_tokens_used_through_one_count_against_the_other(tmp_path: Path, stream: bool) -> None:
    apps = replicas(tmp_path, [{"tpm": 20}])
    try:
        body = {**CHAT, "stream": stream}
        first = await arequest(apps[0], "POST", "/v1/chat/completions", body)
        assert first.status == 200
        second = await arequest(apps[1], "POST", "/v1/chat/completions", body)  # 15 of 20 used
        assert second.status == 200
        # 30 of 20 (the second's tokens are added without waiting: let their write go out)
        await asyncio.sleep(0.05)
        third = await arequest(apps[0], "POST", "/v1/chat/completions", body)
        assert third.status == 429, third.body
        key = f"seance:rl:deployment:{apps[0].deployments.all()[0].id}"
        assert redis.Redis.from_url(REDIS_URL).hget(key, "t") == b"30"
    finally:
        _forget(apps)


async def test_redis_unreachable_counts_in_each_process(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    closed = f"redis://127.0.0.1:{_closed_port()}/0"
    apps = replicas(tmp_path, [{"rpm": 2}], redis_url=closed)
    with caplog.at_level(logging.WARNING, logger="seance.gateway"):
        for app in apps:
            statuses = [(await arequest(app, "POST", "/v1/chat/completions", CHAT)).status for _ in range(3)]
            assert statuses == [200, 200, 429], "each its own count: no 500, no request lost"
    warned = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert warned and all(m.startswith("deployment rpm/tpm limits: Redis at") for m in warned), warned
    assert len(warned) == 2, "once per gateway"


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_without_pre_call_checks_nothing_is_counted_in_redis(tmp_path: Path) -> None:
    config = {"model_list": [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "rpm": 1,
              "api_key": "sk-up", "api_base": "http://up.test/v1"}}]}  # fmt: skip
    app, _ = make_app(tmp_path, config, answer, env={"REDIS_URL": REDIS_URL})
    assert app.router.strategy is None, "rpm is a weight there, not a limit: no count to share"


def test_two_workers_of_a_real_server_share_a_deployments_rpm(gateway: GatewayFactory) -> None:
    """The issue's figure for a shared limit, for a deployment's: 1,000 concurrent requests (answered
    by mock_response: no upstream) through 2 workers against rpm 100 admit exactly 100."""
    deployment_id = f"shared-{uuid.uuid4().hex[:12]}"
    config = {
        "model_list": [{"model_name": "gpt", "litellm_params": {"model": "openai/gpt-4o", "rpm": 100,
                        "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-up"}, "model_info": {"id": deployment_id}}],
        "router_settings": {"enable_pre_call_checks": True},
    }  # fmt: skip
    running = gateway(config, {"REDIS_URL": REDIS_URL}, args=("--workers", "2"))
    try:
        answers = asyncio.run(_burst(int(running.url.rsplit(":", 1)[1]), 1000))
        statuses = [status for status, _ in answers]
        assert statuses.count(200) == 100 and statuses.count(429) == 900, running.output()
        assert redis.Redis.from_url(REDIS_URL).hget(f"seance:rl:deployment:{deployment_id}", "r") == b"100"
        assert "unreachable" not in running.output()
    finally:
        redis.Redis.from_url(REDIS_URL).delete(f"seance:rl:deployment:{deployment_id}")
