"""A bare relay on Seance's own stack (uvicorn + uvloop + httptools + aiohttp + orjson).

It is the floor for this stack on this machine at this moment: one parse, model swapped, bytes
relayed, streams passed chunk by chunk; no auth, no routing, no error handling. `--only relay`
measures it beside Seance so their CPU per request can be compared in the same run.

    .venv/bin/python bench/relay.py PORT UPSTREAM_ORIGIN  (model → path map in $RELAY_ROUTES)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Relay:
    def __init__(self, origin: str, routes: dict[str, list[str]]) -> None:
        self.origin = origin
        self.routes = routes  # model name -> [upstream path, upstream model]
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    connector = aiohttp.TCPConnector(limit=512, keepalive_timeout=60)
                    self.session = aiohttp.ClientSession(connector=connector)
                    await send({"type": "lifespan.startup.complete"})
            if self.session is not None:
                await self.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        raw = b""
        more = True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        body = orjson.loads(raw)
        path, model = self.routes[body["model"]]
        body["model"] = model
        assert self.session is not None
        headers = {"Authorization": "Bearer sk-fake", "Content-Type": "application/json"}
        async with self.session.post(self.origin + path, data=orjson.dumps(body), headers=headers) as up:
            content_type = up.headers.get("Content-Type", "application/json").encode()
            start = {"type": "http.response.start", "status": up.status}
            await send({**start, "headers": [(b"content-type", content_type)]})
            if body.get("stream"):
                async for chunk in up.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                await send({"type": "http.response.body", "body": await up.read()})


def main() -> None:
    port, origin = int(sys.argv[1]), sys.argv[2]
    app = Relay(origin, json.loads(os.environ["RELAY_ROUTES"]))
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
        log_level="warning", access_log=False, proxy_headers=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
