"""Cooldowns shared through the real Redis on 127.0.0.1:6379: a deployment one worker cools down
is skipped by the others from their next request on (a message, not a poll); a worker that starts
later reads the cooldowns in force. (Redis down: test_bus.py.)"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.gateway.conftest import GatewayFactory, deployment
from tests.gateway.routing.test_bus import REDIS, _bus, _until, prefix

from seance.gateway.routing.bus import PREFIX
from seance.gateway.routing.cooldowns import KEY, Cooldowns, Shared

__all__ = ["prefix"]  # the fixture


async def test_a_cooldown_announced_by_one_worker_is_heard_by_the_other_at_once(prefix: str) -> None:
    ids = ["a", "b"]
    one, other = Cooldowns(allowed_fails=0, cooldown_time=30), Cooldowns(allowed_fails=0, cooldown_time=30)
    bus_one, bus_other = _bus(prefix), _bus(prefix)
    shared_one, shared_other = Shared(one, bus_one, ids), Shared(other, bus_other, ids)
    await bus_one.start()
    await bus_other.start()
    try:
        assert one.failed("a", 500)
        await shared_one.announce("a")
        await _until(lambda: other.cooling("a"), 1.0)  # a message, not a poll
        assert not other.cooling("b") and 29 < other.seconds_left(["a"]) <= 30
        assert 0 < await bus_one.client.pttl(prefix + KEY + "a") <= 30_000  # Redis forgets it by itself
        for message in (b"nan a", b"inf a", b"-1 b", b"5 unknown", b"garbage", b"\xff\xfe"):
            shared_other.heard(message)  # what no worker sends changes nothing
        assert not other.cooling("b") and other.seconds_left(["a"]) <= 30
    finally:
        await bus_one.stop()
        await bus_other.stop()


async def test_a_worker_that_starts_later_reads_the_cooldowns_in_force(prefix: str) -> None:
    early = _bus(prefix)
    shared_early = Shared(Cooldowns(allowed_fails=0, cooldown_time=30), early, ["a", "b"])
    await shared_early.announce("b")  # nobody listening yet
    late_cooldowns = Cooldowns(allowed_fails=0, cooldown_time=30)
    late = _bus(prefix)
    Shared(late_cooldowns, late, ["a", "b"])
    await late.start()
    try:
        assert late_cooldowns.cooling("b")  # caught up before start returns
        assert not late_cooldowns.cooling("a")
    finally:
        await early.stop()
        await late.stop()


class _Upstream(BaseHTTPRequestHandler):
    counts: Counter[str]
    OK = (b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":'
          b'{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,'
          b'"completion_tokens":1,"total_tokens":2}}')  # fmt: skip

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        name = self.path.split("/")[1]  # /bad/chat/completions or /good/...
        self.counts[name] += 1
        status, body = (503, b'{"error":{"message":"down"}}') if name == "bad" else (200, self.OK)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, Counter[str]]]:
    counts: Counter[str] = Counter()
    handler = type("Handler", (_Upstream,), {"counts": counts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", counts
    server.shutdown()
    server.server_close()


def test_after_a_failure_no_request_reaches_the_deployment_from_either_gateway(
    gateway: GatewayFactory, upstream: tuple[str, Counter[str]]
) -> None:
    """Requests alternate between two gateways on one Redis: the request right after the failure
    goes to the other gateway, and it already skips the failed deployment."""
    base, counts = upstream
    run = uuid.uuid4().hex
    config = _bad_and_good(base, run)
    env = {"REDIS_URL": REDIS}
    gateways = [gateway(config, env), gateway(config, env)]
    clients = [g.http() for g in gateways]
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    try:
        for number in range(60):
            assert clients[number % 2].post("/v1/chat/completions", json=body).status_code == 200
        assert counts["bad"] == 1 and counts["good"] >= 60  # the first failure was the last request it got
    finally:
        for client in clients:
            client.close()
        asyncio.run(_delete(f"bad-{run}", f"good-{run}"))


def _bad_and_good(base: str, run: str) -> dict[str, Any]:
    """One group of two deployments: "bad" fails at once and cools down for a minute."""
    return {
        "model_list": [
            {**deployment("gpt", "openai/gpt-4o", base + "/bad"), "model_info": {"id": f"bad-{run}"}},
            {**deployment("gpt", "openai/gpt-4o", base + "/good"), "model_info": {"id": f"good-{run}"}},
        ],
        "router_settings": {"allowed_fails": 0, "cooldown_time": 60, "num_retries": 1},
    }


async def _delete(*ids: str) -> None:
    client = Redis.from_url(REDIS)
    await client.delete(*(PREFIX + KEY + i for i in ids))
    await client.aclose()


def test_the_workers_of_one_gateway_share_a_cooldown(
    gateway: GatewayFactory, upstream: tuple[str, Counter[str]]
) -> None:
    """`--workers 2`: each request on a new connection, spread over the workers by the kernel."""
    base, counts = upstream
    run = uuid.uuid4().hex
    config = _bad_and_good(base, run)
    running = gateway(config, {"REDIS_URL": REDIS}, args=("--workers", "2"))
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    try:
        for _ in range(40):
            with running.http() as client:  # a new connection each time
                assert client.post("/v1/chat/completions", json=body).status_code == 200
        assert counts["bad"] == 1 and counts["good"] >= 40
    finally:
        asyncio.run(_delete(f"bad-{run}", f"good-{run}"))
