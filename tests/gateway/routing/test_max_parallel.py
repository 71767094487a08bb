"""litellm_params.max_parallel_requests: a deployment's calls in flight (per worker) are held to it,
as LiteLLM's semaphore holds them: the others wait for a place, completions until their answer
is read, streams until they have started; a call that finds no place within its timeout is a 429.
In-process, over a transport that takes its time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from tests.gateway.asgi_client import KEY, arequest, deployment

from seance.gateway.app import Gateway
from seance.gateway.config import ConfigError, load_settings
from seance.gateway.pipeline.auth import Auth
from seance.gateway.upstream import Timeout, UpstreamRequest, UpstreamResponse
from seance.gateway.upstream.mock import MockResponse, MockTransport

ANSWER = (
    b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}'
)
STREAM = [
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,'
    b'"delta":{"content":"yo"},"finish_reason":null}]}\n\n',
    b"data: [DONE]\n\n",
]
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}


class Slow(MockTransport):
    """Each call takes `seconds` to answer; counts how many are in flight at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__(self.answer)
        self.seconds = seconds
        self.in_flight = 0
        self.most = 0

    @staticmethod
    def answer(request: UpstreamRequest) -> MockResponse:
        body = orjson.loads(request.body or b"{}")
        if body.get("stream"):
            return MockResponse(200, list(STREAM), {"content-type": "text/event-stream"})
        return MockResponse(200, ANSWER)

    async def send(self, request: UpstreamRequest, timeout: Timeout, provider: str) -> UpstreamResponse:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.seconds)
            return await super().send(request, timeout, provider)
        finally:
            self.in_flight -= 1


def gateway(tmp_path: Path, transport: MockTransport, router: dict[str, Any] | None = None, **params: Any) -> Gateway:
    path = tmp_path / "config.yaml"
    config = {
        "model_list": [deployment("gpt", "openai/gpt-4o", **params)],
        "litellm_settings": {"num_retries": 0},
        "router_settings": router or {},
    }
    path.write_bytes(orjson.dumps(config))
    settings = load_settings(path, {"LITELLM_MASTER_KEY": KEY}, announce=False)
    return Gateway(settings, [Auth(KEY, False)], transport)


@pytest.mark.parametrize("stream", [False, True])
def test_calls_in_flight_are_held_to_the_limit(tmp_path: Path, stream: bool) -> None:
    transport = Slow(0.05)
    app = gateway(tmp_path, transport, max_parallel_requests=2)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(arequest(app, "POST", "/v1/chat/completions", {**CHAT, "stream": stream})
                                      for _ in range(7)))  # fmt: skip

    answers = asyncio.run(burst())
    assert [a.status for a in answers] == [200] * 7
    assert transport.most == 2, "never more than max_parallel_requests at once"
    assert len(transport.requests) == 7

    unlimited = Slow(0.05)
    app = gateway(tmp_path, unlimited)
    asyncio.run(burst())
    assert unlimited.most == 7, "without it, all at once (the test can tell)"


def test_no_place_within_the_timeout_is_a_429(tmp_path: Path) -> None:
    transport = Slow(0.5)
    app = gateway(tmp_path, transport, max_parallel_requests=1)

    async def two() -> list[Any]:
        first = asyncio.create_task(arequest(app, "POST", "/v1/chat/completions", CHAT))
        await asyncio.sleep(0.05)  # the first holds the only place
        second = await arequest(app, "POST", "/v1/chat/completions", {**CHAT, "timeout": 0.1})
        return [await first, second]

    first, second = asyncio.run(two())
    assert first.status == 200
    assert second.status == 429, second.body
    error = second.json()["error"]
    assert error["code"] == "max_parallel_requests" and "had 1 calls in flight" in error["message"]
    assert len(transport.requests) == 1, "the refused call never reached the provider"


@pytest.mark.parametrize("value", [0, -1, "two", True])
def test_a_limit_that_is_not_one_stops_the_start(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.max_parallel_requests: a number of calls"):
        gateway(tmp_path, MockTransport(Slow.answer), max_parallel_requests=value)


def test_router_default_holds_deployments_without_their_own(tmp_path: Path) -> None:
    """router_settings.default_max_parallel_requests, as LiteLLM's Router takes it: the limit of a
    deployment that sets none; one that sets its own keeps it."""

    async def burst(app: Gateway) -> list[Any]:
        return await asyncio.gather(*(arequest(app, "POST", "/v1/chat/completions", CHAT) for _ in range(6)))

    defaulted = Slow(0.05)
    answers = asyncio.run(burst(gateway(tmp_path, defaulted, {"default_max_parallel_requests": 2})))
    assert [a.status for a in answers] == [200] * 6
    assert defaulted.most == 2

    own = Slow(0.05)
    asyncio.run(burst(gateway(tmp_path, own, {"default_max_parallel_requests": 2}, max_parallel_requests=3)))
    assert own.most == 3, "the deployment's own max_parallel_requests wins over the default"


@pytest.mark.parametrize("value", [0, "two"])
def test_a_default_that_is_not_one_stops_the_start(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match=r"router_settings\.default_max_parallel_requests"):
        gateway(tmp_path, MockTransport(Slow.answer), {"default_max_parallel_requests": value})
