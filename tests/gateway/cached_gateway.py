"""What the tests of the response cache on the real gateway share: a Redis namespace of their own
(emptied after), a gateway with the cache on, and a wait for a Redis write that follows an answer."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from tests.gateway.conftest import GatewayFactory, Running, deployment
from tests.wire import ReplayUpstream

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def upstream() -> Iterator[ReplayUpstream]:
    with ReplayUpstream() as server:
        yield server


@pytest.fixture
def space() -> Iterator[str]:
    """A namespace of this test's own; every key starting with it is deleted after."""
    name = "seance-test-" + os.urandom(6).hex()
    yield name
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=name + "*"))
    if keys:
        client.delete(*keys)
    client.close()


def start(
    gateway: GatewayFactory, upstream: ReplayUpstream, space: str, kind: str, *args: str, url: str = REDIS_URL
) -> Running:
    """A gateway with one model group, gpt, and the cache (`kind`: local or redis) under `space`."""
    config: dict[str, Any] = {
        "model_list": [deployment("gpt", "openai/gpt-3.5-turbo", upstream.url + "/v1")],
        "litellm_settings": {"cache": True, "cache_params": {"type": kind, "namespace": space}},
    }
    return gateway(config, {"REDIS_URL": url} if kind == "redis" else {}, args=args)


def wait_stored(space: str, key: str) -> None:
    """The store happens after the last byte: a second worker may be asked before it is done."""
    client = redis.Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + 5
    while not client.exists(f"{space}:{key}") and time.monotonic() < deadline:
        time.sleep(0.01)
    client.close()
