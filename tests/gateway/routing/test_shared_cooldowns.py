"""Cooldowns shared through the real Redis on 127.0.0.1:6379: a deployment one worker cools down is
skipped by the others after their next refresh; Redis down, each worker keeps its own."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from redis.asyncio import Redis
from tests.gateway.conftest import GatewayFactory, deployment

from seance.gateway.routing.cooldowns import KEY, Cooldowns, Shared

REDIS = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_cooldown_written_by_one_worker_is_read_by_the_other() -> None:
    ids = [f"test-{uuid.uuid4().hex}" for _ in range(2)]  # a key of its own per test run
    one, other = Cooldowns(allowed_fails=0, cooldown_time=30), Cooldowns(allowed_fails=0, cooldown_time=30)
    shared_one, shared_other = Shared(one, Redis.from_url(REDIS), ids), Shared(other, Redis.from_url(REDIS), ids)
    try:
        await shared_other.refresh()
        assert not other.cooling(ids[0])
        assert one.failed(ids[0], 500)
        shared_one.announce(ids[0])
        await asyncio.gather(*shared_one._writes)
        await shared_other.refresh()
        assert other.cooling(ids[0]) and not other.cooling(ids[1])
        assert 28 < other.seconds_left([ids[0]]) <= 30
        ttl = await shared_one.client.pttl(KEY + ids[0])
        assert 0 < ttl <= 30_000  # Redis forgets it by itself
    finally:
        await shared_one.client.delete(*(KEY + i for i in ids))
        await shared_one.stop()
        await shared_other.stop()


async def test_redis_down_keeps_local_cooldowns_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    local = Cooldowns(allowed_fails=0, cooldown_time=30)
    shared = Shared(local, Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2), ["dep"])
    with caplog.at_level(logging.WARNING, logger="seance.gateway"):
        assert local.failed("dep", 500)
        shared.announce("dep")
        await asyncio.gather(*shared._writes)
        await shared.refresh()
        await shared.refresh()
    assert local.cooling("dep")
    assert [r.getMessage() for r in caplog.records].count(
        "shared cooldowns: Redis failed (ConnectionError); each worker keeps its own"
    ) == 1
    await shared.stop()


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


def test_two_gateways_share_a_cooldown_through_redis(
    gateway: GatewayFactory, upstream: tuple[str, Counter[str]]
) -> None:
    base, counts = upstream
    run = uuid.uuid4().hex
    config = {
        "model_list": [
            deployment("gpt", "openai/gpt-4o", base + "/bad", model_info={"id": f"bad-{run}"}),
            deployment("gpt", "openai/gpt-4o", base + "/good", model_info={"id": f"good-{run}"}),
        ],
        "router_settings": {"allowed_fails": 0, "cooldown_time": 60, "num_retries": 1},
    }
    env = {"REDIS_URL": REDIS}
    first, second = gateway(config, env), gateway(config, env)
    body = {"model": "gpt", "messages": [{"role": "user", "content": "hi"}]}
    try:
        with first.http() as client:
            for _ in range(10):  # until the bad deployment has been tried (and cooled down) once
                assert client.post("/v1/chat/completions", json=body).status_code == 200
                if counts["bad"]:
                    break
        assert counts["bad"] == 1
        time.sleep(1.5)  # the other gateway's refresh (every second) has run
        with second.http() as client:
            for _ in range(20):
                assert client.post("/v1/chat/completions", json=body).status_code == 200
        assert counts["bad"] == 1 and counts["good"] >= 20  # the second never tried it
    finally:
        asyncio.run(_delete(f"bad-{run}", f"good-{run}"))


async def _delete(*ids: str) -> None:
    client = Redis.from_url(REDIS)
    await client.delete(*(KEY + i for i in ids))
    await client.aclose()
