"""asgi.DisconnectWatch: a client that leaves cancels the request's task, told by the gateway's own
server at once, or found by a delayed receive() under any other ASGI server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from seance.gateway.asgi import DisconnectWatch


class Cycle:
    """What the watch looks for in serving.GatewayCycle: an `on_lost` the connection calls."""

    on_lost: Any = None

    async def receive(self) -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}


async def test_under_the_gateways_server_the_connection_tells_the_watch() -> None:
    cycle = Cycle()
    watches: list[DisconnectWatch] = []

    async def request() -> None:
        watches.append(DisconnectWatch(cycle.receive))
        try:
            await asyncio.sleep(3600)
        finally:
            watches[0].close()

    task = asyncio.ensure_future(request())
    await asyncio.sleep(0)
    assert cycle.on_lost is not None and watches[0].timer is None  # nothing armed
    cycle.on_lost()  # what GatewayProtocol.connection_lost does
    with pytest.raises(asyncio.CancelledError):
        await task
    assert watches[0].gone and cycle.on_lost is None


async def test_a_request_that_ends_leaves_nothing_behind() -> None:
    cycle = Cycle()

    async def request() -> bool:
        watch = DisconnectWatch(cycle.receive)
        await asyncio.sleep(0)
        watch.close()
        return watch.gone

    assert await request() is False and cycle.on_lost is None


async def test_under_another_server_a_delayed_receive_finds_the_client_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DisconnectWatch, "DELAY", 0.01)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    watches: list[DisconnectWatch] = []

    async def request() -> None:
        watches.append(DisconnectWatch(receive))
        try:
            await asyncio.sleep(3600)
        finally:
            watches[0].close()

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(request(), 5)
    assert watches[0].gone and watches[0].timer is not None
