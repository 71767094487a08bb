"""A bare relay on Seance's own stack (uvicorn + uvloop + httptools + aiohttp + orjson).

It is the floor for this stack on this machine at this moment: one parse, model swapped, bytes
relayed, streams passed chunk by chunk; no auth, no routing, no error handling. `--only relay`
measures it beside Seance so their CPU per request can be compared in the same run. With the
`raw` client (target `relay-raw`) the upstream side is rawclient.py instead of aiohttp, which shows
what the client library itself costs.

    .venv/bin/python bench/relay.py PORT UPSTREAM_ORIGIN aiohttp|raw  (routes in $RELAY_ROUTES)
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

from rawclient import RawPool

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Relay:
    def __init__(self, origin: str, routes: dict[str, list[str]], client: str) -> None:
        self.origin = origin
        self.routes = routes  # model name -> [upstream path, upstream model]
        self.session: aiohttp.ClientSession | None = None
        host, port = origin.removeprefix("http://").split(":")
        self.raw = RawPool(host, int(port)) if client == "raw" else None

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
        headers = {"Authorization": "Bearer sk-fake", "Content-Type": "application/json"}
        if self.raw is not None:
            raw_up = await self.raw.post(path, headers, orjson.dumps(body))
            start = {"type": "http.response.start", "status": raw_up.status}
            await send({**start, "headers": [(b"content-type", raw_up.content_type)]})
            if body.get("stream"):
                async for chunk in raw_up.chunks():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                await send({"type": "http.response.body", "body": await raw_up.read()})
            return
        assert self.session is not None
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
    port, origin, client = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    app = Relay(origin, json.loads(os.environ["RELAY_ROUTES"]), client)
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
        log_level="warning", access_log=False, proxy_headers=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
