"""The gateway with its store, in this process, on one event loop: the app over a MockTransport
that answers every chat request with known usage, the store on SQLite or the real PostgreSQL
(`db_env`), and an httpx client speaking to the app as a LiteLLM admin script would."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson

from seance.gateway.app import Gateway
from seance.gateway.cli import access_groups, spend_options
from seance.gateway.config import load_settings
from seance.gateway.metrics import Metrics
from seance.gateway.pipeline import hooks
from seance.gateway.shared_state import find_redis
from seance.gateway.store import Store, find_database
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse, MockTransport

MASTER = "sk-stack-master-key"
PRICES = {"input_cost_per_token": 0.0001, "output_cost_per_token": 0.0002}  # 10 in + 5 out = 0.002
ANSWER = (
    b'{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"yo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}'
)
COST = 10 * 0.0001 + 5 * 0.0002


def model(name: str, **info: Any) -> dict[str, Any]:
    return {"model_name": name, "litellm_params": {"model": f"openai/{name}", "api_base": "http://up.test/v1",
            "api_key": "sk-up"}, "model_info": {**PRICES, **info}}  # fmt: skip


@dataclass
class Stack:
    app: Gateway
    store: Store
    client: httpx.AsyncClient
    transport: MockTransport

    async def admin(self, method: str, path: str, body: Any = None, as_key: str = MASTER, **params: Any) -> Any:
        """A management call; returns (status, parsed body)."""
        answer = await self.client.request(
            method, path, content=None if body is None else orjson.dumps(body), params=params or None,
            headers={"authorization": f"Bearer {as_key}", "content-type": "application/json"},
        )  # fmt: skip
        return answer.status_code, answer.json()

    async def chat(self, key: str, model_name: str = "a", **extra: Any) -> httpx.Response:
        body = {"model": model_name, "messages": [{"role": "user", "content": "hi"}], **extra}
        return await self.client.post("/v1/chat/completions", content=orjson.dumps(body),
                                      headers={"authorization": f"Bearer {key}"})  # fmt: skip

    async def generate(self, **fields: Any) -> str:
        status, body = await self.admin("POST", "/key/generate", fields)
        assert status == 200, body
        key: str = body["key"]
        return key


@asynccontextmanager
async def stack(tmp_path: Path, db_env: dict[str, str], models: list[dict[str, Any]] | None = None,
                ttl: float = 10.0, general: dict[str, Any] | None = None,
                metrics: bool = False, litellm: dict[str, Any] | None = None,
                redis_url: str | None = None, router: dict[str, Any] | None = None,
                answer: Callable[[UpstreamRequest], MockResponse] | None = None) -> AsyncIterator[Stack]:  # fmt: skip
    """`metrics`: Prometheus metrics on (GET /metrics with the master key); `general`, `litellm`,
    `router`: the config's general_settings, litellm_settings and router_settings; `redis_url`:
    REDIS_URL (the rate limits shared there); `answer`: the upstream's (default: ANSWER)."""
    config = tmp_path / "config.yaml"
    sections = {"general_settings": general or {}, "litellm_settings": litellm or {}, "router_settings": router or {}}
    config.write_bytes(orjson.dumps({"model_list": models or [model("a"), model("b")], **sections}))
    redis_env = {"REDIS_URL": redis_url} if redis_url else {}
    settings = load_settings(config, {"LITELLM_MASTER_KEY": MASTER, **db_env, **redis_env}, announce=False)
    store = Store(find_database(settings), access_groups(settings), ttl, spend_options(settings),
                  settings.file.litellm_settings.max_end_user_budget)  # fmt: skip
    await store.open(migrate_first=True)

    def handler(request: UpstreamRequest) -> MockResponse:
        return MockResponse(200, ANSWER)

    transport = MockTransport(answer or handler)
    measured = Metrics(settings) if metrics else None
    features = hooks.Features(MASTER, settings=settings, store=store, metrics=measured, redis=find_redis(settings))
    app = Gateway(settings, hooks.build(features), transport, store=store, metrics=measured)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw.test") as client:
            yield Stack(app, store, client, transport)
    finally:
        await store.close()
