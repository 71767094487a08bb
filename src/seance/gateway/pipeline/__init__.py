"""The hook protocol and the runner of the ordered hook list (the list itself: `hooks.py`).

    on_request, in list order, when the request line and headers are in (before the body is read,
        so a request without a valid key costs no body read or parse): may refuse it
    start, for the hooks that have one, once the body is read: sends what their `before` will
        wait for (the cache's Redis lookup), so that round trips overlap instead of queueing
    before, in list order, once the body is read: each may refuse it (raise a GatewayError),
        answer it instead of the provider (return an Answer: a cache hit), or let it go on (None)
    after, in reverse order, once the last byte of the answer is sent (streams too), with the
        context complete: usage, cost, timings, status. A failing after-hook is logged and changes
        nothing the client sees.
    close, when the process stops: hands over what a hook holds (the limits' leases in Redis)

A hook that does not override `before` or `after` is not called there: a feature that is off is
left out of the list at start and costs nothing per request.

A stage that never waits may also be given as a plain method, `on_request_now` / `after_now`: the
runner then calls it without making and awaiting a coroutine (about 500 instructions a hook and
a request). Such a hook keeps its `async` form too (one line calling the plain one), for callers
that await it. `before_now` is the same for `before`, but set on the instance (like `start`): a
hook whose `before` waits or not by its store (the in-process one or Redis) sets it when it does not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from seance.gateway.context import Headers, RequestContext

log = logging.getLogger("seance.gateway")


@dataclass(frozen=True, slots=True)
class Answer:
    """What a before-hook answers instead of the provider."""

    body: bytes
    status: int = 200
    content_type: bytes = b"application/json"
    headers: Headers = field(default_factory=list)


class Hook:
    name: str = "hook"
    # reads ctx.usage of streams: the gateway then asks providers for it when the client did not
    needs_usage: bool = False
    # a plain method called for every hook that has one, in list order, before the first `before`:
    # it sends what its `before` will wait for (a lookup in Redis), so that the hooks' round trips
    # overlap instead of following one another. None: the hook has nothing to send early.
    start: Callable[[RequestContext, dict[str, Any] | None], None] | None = None
    # `before` as a plain method, set on an instance whose `before` never waits (see the module's
    # notes): called instead of it, without a coroutine. None: `before` is awaited.
    before_now: Callable[[RequestContext, dict[str, Any] | None], Answer | None] | None = None

    async def on_request(self, ctx: RequestContext) -> None:
        """Called with the request line and headers only; refuses by raising a GatewayError."""

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        """Called before the provider; `body` is the parsed request (None for GET routes)."""
        return None

    async def after(self, ctx: RequestContext) -> None:
        """Called after the last byte; must not raise (it is logged if it does)."""

    def on_request_now(self, ctx: RequestContext) -> None:
        """`on_request` that never waits, called as a plain method (see the module's notes)."""

    def after_now(self, ctx: RequestContext) -> None:
        """`after` that never waits, called as a plain method (see the module's notes)."""

    async def close(self) -> None:
        """The process stops, after the last request: hand over what is held (the limits' leases)."""


def _stage(hooks: Sequence[Hook], name: str) -> tuple[tuple[Callable[[RequestContext], Any], bool], ...]:
    """Each hook's method of a stage, and whether it is the plain one (`<name>_now`)."""
    calls: list[tuple[Callable[[RequestContext], Any], bool]] = []
    for hook in hooks:
        now = getattr(type(hook), name + "_now") is not getattr(Hook, name + "_now")
        calls.append((getattr(hook, name + "_now"), True) if now else (getattr(hook, name), False))
    return tuple(calls)


def _overrides(hook: Hook, name: str) -> bool:
    return getattr(type(hook), name) is not getattr(Hook, name)


class Pipeline:
    def __init__(self, hooks: Sequence[Hook]) -> None:
        self.hooks = tuple(hooks)
        self._on_request = tuple(
            h for h in self.hooks if _overrides(h, "on_request") or _overrides(h, "on_request_now")
        )
        self._before = tuple(h for h in self.hooks if type(h).before is not Hook.before)
        self._start = tuple(h.start for h in self._before if h.start is not None)
        self._before_calls: tuple[tuple[Callable[..., Any], bool], ...] = tuple(
            (h.before_now, True) if h.before_now is not None else (h.before, False) for h in self._before
        )
        self._after = tuple(h for h in reversed(self.hooks) if _overrides(h, "after") or _overrides(h, "after_now"))
        self._on_request_calls = _stage(self._on_request, "on_request")
        self._after_calls = _stage(self._after, "after")
        self.needs_usage = any(h.needs_usage for h in self.hooks)
        # whether a stage has any hook at all: app.py skips an empty stage without an await
        self.has_on_request = bool(self._on_request)
        # every on_request hook's is plain (the master key alone, metrics): app.py then calls
        # on_request_now, without the stage's own coroutine
        self.on_request_plain = all(now for _, now in self._on_request_calls)
        # the same for the after stage (metrics, limits, cache, spend: all plain): `after_now`
        self.after_plain = all(now for _, now in self._after_calls)
        self.has_before = bool(self._before)
        self.has_after = bool(self._after)

    def on_request_now(self, ctx: RequestContext) -> None:
        """on_request when `on_request_plain`."""
        for call, _ in self._on_request_calls:
            call(ctx)

    async def on_request(self, ctx: RequestContext) -> None:
        for call, now in self._on_request_calls:
            if now:
                call(ctx)
            else:
                await call(ctx)

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        for start in self._start:
            start(ctx, body)
        for call, now in self._before_calls:
            answer: Answer | None = call(ctx, body) if now else await call(ctx, body)
            if answer is not None:
                return answer
        return None

    def after_now(self, ctx: RequestContext) -> None:
        """after when `after_plain`: no coroutine to make and step through (~1.5k instructions)."""
        for call, _ in self._after_calls:
            try:
                call(ctx)
            except Exception:
                _failed_after(call, ctx)

    async def after(self, ctx: RequestContext) -> None:
        for call, now in self._after_calls:
            try:
                if now:
                    call(ctx)
                else:
                    await call(ctx)
            except Exception:
                _failed_after(call, ctx)

    async def close(self) -> None:
        for hook in self.hooks:
            try:
                await hook.close()
            except Exception:
                log.exception("the %s hook failed to close", hook.name)


def _failed_after(call: Callable[[RequestContext], Any], ctx: RequestContext) -> None:
    name = getattr(getattr(call, "__self__", None), "name", "hook")
    log.exception("request %s: the %s hook failed after the answer", ctx.id, name)
