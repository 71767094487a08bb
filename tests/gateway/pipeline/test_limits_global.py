"""general_settings.global_max_parallel_requests: the LLM requests in flight at once in a worker
process, whoever sends them (the master key too), as LiteLLM counts it; past it a 429 with
retry-after, and a place frees when a request ends, however it ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from tests.gateway.asgi_client import KEY, arequest
from tests.gateway.pipeline.test_limits import CHAT, CONFIG, GatedTransport, _until, answer

from seance.gateway.app import Gateway
from seance.gateway.config import ConfigError, load_settings
from seance.gateway.pipeline import hooks
from seance.gateway.pipeline.limits import GlobalCap


def capped(tmp_path: Path, cap: int) -> tuple[Gateway, GatedTransport]:
    """The gateway as the command builds it from a config with the cap (no keys store)."""
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({**CONFIG, "general_settings": {"global_max_parallel_requests": cap}}))
    settings = load_settings(path, {"LITELLM_MASTER_KEY": KEY})
    transport = GatedTransport(answer)
    return Gateway(settings, hooks.build(hooks.Features(KEY, settings=settings)), transport), transport


async def test_requests_past_the_cap_get_429_and_places_free_when_they_end(tmp_path: Path) -> None:
    app, transport = capped(tmp_path, 2)
    tasks = [asyncio.create_task(arequest(app, "POST", "/v1/chat/completions", CHAT)) for _ in range(5)]
    await _until(lambda: sum(t.done() for t in tasks) == 3)
    refused = [t.result() for t in tasks if t.done()]
    assert all(a.status == 429 and a.headers["retry-after"] == "1" for a in refused), refused
    error = refused[0].json()["error"]
    assert error["type"] == "rate_limit_error"
    assert "global_max_parallel_requests limit of 2 requests at once" in error["message"]
    assert not any(name.startswith("x-ratelimit") for name in refused[0].headers)
    transport.gate.set()
    assert sorted(a.status for a in await asyncio.gather(*tasks)) == [200, 200, 429, 429, 429]
    again = await asyncio.gather(*(arequest(app, "POST", "/v1/chat/completions", CHAT) for _ in range(2)))
    assert [a.status for a in again] == [200, 200]
    (cap,) = [h for h in app.pipeline.hooks if isinstance(h, GlobalCap)]
    assert cap.in_flight == 0


async def test_failed_and_refused_requests_give_their_place_back(tmp_path: Path) -> None:
    app, transport = capped(tmp_path, 1)
    transport.gate.set()
    unknown = await arequest(app, "POST", "/v1/chat/completions", {**CHAT, "model": "nope"})
    assert unknown.status == 404
    no_key = await arequest(app, "POST", "/v1/chat/completions", CHAT, headers={"authorization": "Bearer wrong"})
    assert no_key.status == 401
    for _ in range(3):  # one at a time: each finds the place free
        assert (await arequest(app, "POST", "/v1/chat/completions", CHAT)).status == 200


def test_the_cap_must_be_a_positive_count(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps({**CONFIG, "general_settings": {"global_max_parallel_requests": 0}}))
    with pytest.raises(ConfigError, match="global_max_parallel_requests"):
        load_settings(path, {"LITELLM_MASTER_KEY": KEY})
