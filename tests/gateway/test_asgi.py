"""asgi.DisconnectWatch: a client that leaves cancels the request's task, told by the gateway's own
server, or found by a delayed receive() under any other ASGI server."""

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


async def test_under_the_gateways_server_the_connection_tells_the_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DisconnectWatch, "DELAY", 0.01)
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
    cycle.on_lost()  # what GatewayProtocol.connection_lost does: the request is cancelled DELAY later
    assert not task.done() and watches[0].gone
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert cycle.on_lost is None


async def test_a_request_that_ends_soon_after_its_client_left_is_not_cancelled() -> None:
    """A client that hangs up on a stream's last event: the request ends by itself (its upstream
    connection goes back to the pool) instead of being cancelled."""
    cycle = Cycle()

    async def request() -> str:
        watch = DisconnectWatch(cycle.receive)
        try:
            cycle.on_lost()
            await asyncio.sleep(DisconnectWatch.DELAY / 5)  # the stream's end arrives
            return "ended"
        finally:
            watch.close()

    assert await request() == "ended"
    await asyncio.sleep(2 * DisconnectWatch.DELAY)  # no cancel left behind
    assert cycle.on_lost is None


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


async def test_a_stream_whose_client_left_after_the_usage_keeps_the_usage() -> None:
    """The client read the usage event and [DONE] and hung up while the upstream's answer had not
    ended: the request is cancelled, and the usage the stream reported still counts (spend,
    metrics, limits)."""
    from seance.gateway import routes
    from seance.gateway.asgi import relay
    from seance.gateway.context import RequestContext
    from seance.gateway.providers.openai_compat import PassThroughStream
    from seance.gateway.routing.proxy import Stream

    sent: list[dict[str, Any]] = []
    last_event = asyncio.Event()

    async def chunks() -> Any:
        yield b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
        yield b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}\n\n'
        yield b"data: [DONE]\n\n"
        last_event.set()
        await asyncio.sleep(3600)  # the upstream's end never comes

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    ctx = RequestContext("r", routes.match("/v1/chat/completions"), "POST", "/v1/chat/completions")
    task = asyncio.ensure_future(relay(send, Stream(chunks(), PassThroughStream("openai")), ctx, lambda exc: b""))
    await last_event.wait()
    await asyncio.sleep(0)
    task.cancel()  # what the disconnect watch does
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ctx.usage is not None and (ctx.usage.prompt_tokens, ctx.usage.completion_tokens) == (12, 3)
