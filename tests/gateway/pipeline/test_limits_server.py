"""Rate limits end to end: the real gateway with 2 workers sharing one limit through the real Redis
on 127.0.0.1, 1,000 concurrent requests (answered by mock_response: no upstream), and the official
SDK reading the 429. Keys are stood in for by stand_in_keys.GiveLimits until virtual keys land."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import orjson
import pytest
import redis
from tests.gateway.conftest import BASE_ENV, MASTER_KEY, GatewayFactory, Running, deployment, free_port

REDIS_URL = os.environ.get("SEANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def _gateway(
    tmp_path: Path, key_rpm: int, parallel: int | None = None, lease_ttl: float | None = None, **config: object
) -> Iterator[tuple[Running, str]]:
    """The gateway with 2 workers and Redis, its master key standing in for a key of `key_rpm`
    (and `parallel` requests at once; its leases admitting requests for `lease_ttl` s)."""
    name = f"key:{os.urandom(8).hex()}"
    path = tmp_path / "config.yaml"
    model_list = config.pop("model_list", [deployment("gpt", "openai/gpt-4o", "http://127.0.0.1:9/v1")])
    path.write_bytes(orjson.dumps({"model_list": model_list, **config}))
    port = free_port()
    limits = orjson.dumps([{"scope": name, "rpm": key_rpm, "parallel": parallel}]).decode()
    command = [sys.executable, "-m", "tests.gateway.pipeline.stand_in_keys", str(path), str(port), "2", limits]
    env = {**BASE_ENV, "LITELLM_MASTER_KEY": MASTER_KEY, "REDIS_URL": REDIS_URL, "PYTHONPATH": str(ROOT)}
    if lease_ttl is not None:
        env["STAND_IN_LEASE_TTL"] = str(lease_ttl)
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    running = Running(f"http://127.0.0.1:{port}", MASTER_KEY, process, log)
    try:
        GatewayFactory._wait_ready(running)
        yield running, name
    finally:
        running.stop()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"seance:rl:{name}*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def limited_gateway(tmp_path: Path) -> Iterator[tuple[Running, str]]:
    with _gateway(tmp_path, 100) as started:
        yield started


async def _post(port: int, body: bytes) -> tuple[int, dict[str, str]]:
    """One request on its own connection, with as little client as can be: on a busy 2-core machine
    a full HTTP client spends more time than the gateway on 1,000 requests."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {MASTER_KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    answer = await reader.read()  # to the end: the gateway closes after the answer
    writer.close()
    lines = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers


async def _burst(port: int, count: int) -> list[tuple[int, dict[str, str]]]:
    body = orjson.dumps({"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "mock_response": "ok"})
    return await asyncio.wait_for(asyncio.gather(*(_post(port, body) for _ in range(count))), 90)


def test_two_workers_share_one_limit_through_redis(limited_gateway: tuple[Running, str]) -> None:
    running, name = limited_gateway
    answers = asyncio.run(_burst(int(running.url.rsplit(":", 1)[1]), 1000))
    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 429}, running.output()
    assert statuses.count(200) == 100, running.output()  # atomic in Redis: not one more, however the workers split them
    assert all(1 <= int(headers["retry-after"]) <= 60 for status, headers in answers if status == 429)
    assert redis.Redis.from_url(REDIS_URL).hget(f"seance:rl:{name}", "r") == b"100"
    assert "unreachable" not in running.output()  # shared, not fallen back to each worker's count

    client = running.openai()
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "hi"}])
    assert "key 'ci-bot' is at its rpm limit of 100" in str(refused.value)
    assert refused.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_two_workers_share_a_deployment_limit_counted_with_the_keys(tmp_path: Path) -> None:
    """A deployment's rpm (pre-call checks) counted in the same script call as the key's limits: the
    same exact count across workers, and the key counts every request it sent."""
    run = os.urandom(6).hex()
    limited = deployment("gpt", "openai/gpt-4o", "http://127.0.0.1:9/v1")
    limited["litellm_params"]["rpm"] = 100
    limited["model_info"] = {"id": f"{run}-gpt"}
    router = {"enable_pre_call_checks": True}
    with _gateway(tmp_path, 10_000, model_list=[limited], router_settings=router) as (running, name):
        try:
            answers = asyncio.run(_burst(int(running.url.rsplit(":", 1)[1]), 1000))
            statuses = [status for status, _ in answers]
            assert set(statuses) <= {200, 429}, running.output()
            assert statuses.count(200) == 100, running.output()
            client = redis.Redis.from_url(REDIS_URL)
            assert client.hget(f"seance:rl:deployment:{run}-gpt", "r") == b"100"
            # (once the key's last lease has ended: its unused requests given back, ratelimits/leases.py)
            deadline = time.monotonic() + 5
            while client.hget(f"seance:rl:{name}", "r") != b"1000" and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.hget(f"seance:rl:{name}", "r") == b"1000"
            assert "unreachable" not in running.output()
        finally:
            redis.Redis.from_url(REDIS_URL).delete(f"seance:rl:deployment:{run}-gpt")


def test_a_stopping_gateway_gives_back_what_its_leases_did_not_use(tmp_path: Path) -> None:
    """A key far from its limits is counted in leases (ratelimits/leases.py): the workers admit
    blocks of its requests themselves. Stopped after a burst, before any lease's time is up (a
    minute, here), the gateway leaves Redis counting exactly the requests it admitted, and none in
    flight."""
    with _gateway(tmp_path, 100_000, parallel=10_000, lease_ttl=60) as (running, name):
        answers = asyncio.run(_burst(int(running.url.rsplit(":", 1)[1]), 300))
        assert [status for status, _ in answers] == [200] * 300, running.output()
        assert running.stop() == 0, running.output()
        client = redis.Redis.from_url(REDIS_URL)
        assert client.hget(f"seance:rl:{name}", "r") == b"300", running.output()
        assert sum(int(value or 0) for value in client.hmget(f"seance:rl:{name}", "a0", "a1", "a2")) == 0
        client.close()
