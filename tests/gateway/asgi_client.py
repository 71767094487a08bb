"""Drive the gateway's ASGI app in this process, without a server or sockets: the app built on a
MockTransport, one request in, the answer's status, headers and body out. For unit tests of the
request path (hooks, routing, fronts); end-to-end tests run the real server (conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from seance.gateway.app import Gateway
from seance.gateway.config import load_settings
from seance.gateway.pipeline import Hook
from seance.gateway.pipeline.auth import Auth
from seance.gateway.upstream import UpstreamRequest
from seance.gateway.upstream.mock import MockResponse, MockTransport

KEY = "sk-unit-master"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    chunks: list[bytes]

    def json(self) -> Any:
        return orjson.loads(self.body)


def make_app(
    tmp_path: Path,
    config: dict[str, Any],
    handler: Callable[[UpstreamRequest], MockResponse | BaseException],
    hooks: Sequence[Hook] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[Gateway, MockTransport]:
    path = tmp_path / "config.yaml"
    path.write_bytes(orjson.dumps(config))
    settings = load_settings(path, {"LITELLM_MASTER_KEY": KEY, **(env or {})})
    transport = MockTransport(handler)
    hook_list = [Auth(KEY, False), *(hooks or ())]
    return Gateway(settings, hook_list, transport), transport


def request(
    app: Gateway, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Answer:
    raw = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"authorization": f"Bearer {KEY}", "content-length": str(len(raw)), **(headers or {})}
    scope = {
        "type": "http", "method": method, "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
    }  # fmt: skip
    messages: list[dict[str, Any]] = []

    async def go() -> None:
        delivered = False
        forever: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await forever

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await app(scope, receive, send)

    asyncio.run(go())
    start = messages[0]
    chunks = [m.get("body", b"") for m in messages[1:]]
    headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
    return Answer(start["status"], headers_out, b"".join(chunks), chunks)


def deployment(name: str, model: str, **params: Any) -> dict[str, Any]:
    info = params.pop("model_info", None)
    entry: dict[str, Any] = {
        "model_name": name,
        "litellm_params": {"model": model, "api_key": "sk-up", "api_base": "http://up.test", **params},
    }
    if info:
        entry["model_info"] = info
    return entry
