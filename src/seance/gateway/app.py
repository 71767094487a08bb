"""The gateway's ASGI entry: a plain ASGI app (no framework on the hot path).

    HTTP in ─► route (routes.py) ─► a request context (context.py)
           ─► hooks on_request (auth) ─► read + parse the body (one orjson parse)
           ─► hooks before (may answer) ─► the route's front: router ─► provider ─► HTTP out
           ─► hooks after, in reverse, once the last byte is sent (streams too)

Everything a handler cannot serve is raised as a GatewayError and rendered once, here, in the
shape of the route's front.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import parse_qs

from seance.gateway import admin, routes
from seance.gateway.asgi import MAX_BODY_BYTES, DisconnectWatch, Receive, Scope, Send, read_body, send_bytes, send_json
from seance.gateway.config import ConfigError, ModelEntry, Settings, announce
from seance.gateway.context import RequestContext, new_request_id
from seance.gateway.errors import GatewayError, PayloadTooLarge
from seance.gateway.fronts import anthropic, openai, read_request, route_headers
from seance.gateway.fronts.health import HealthFront
from seance.gateway.fronts.metrics import MetricsFront
from seance.gateway.fronts.models import ModelsFront
from seance.gateway.fronts.validate import parse
from seance.gateway.metrics import CONTENT_TYPE, Metrics
from seance.gateway.model_sync import ModelSync
from seance.gateway.pipeline import Hook, Pipeline, hooks
from seance.gateway.pipeline.auth import END_USER_HEADERS
from seance.gateway.pipeline.cache import Cache, caching_groups
from seance.gateway.pipeline.limits import RateLimits
from seance.gateway.reload import Reloader
from seance.gateway.routing.deployments import Deployments
from seance.gateway.routing.router import Router
from seance.gateway.store import Store, reason_of
from seance.gateway.upstream import Transport
from seance.gateway.upstream.transport import HTTPTransport, origin_of

log = logging.getLogger("seance.gateway")

# client headers an adapter may forward upstream
FORWARDED = frozenset({b"anthropic-version", b"anthropic-beta"})
# LiteLLM's per-request router settings as headers (the body's fields take precedence); the
# response cache's Cache-Control (no-cache, no-store); the end user (before the body's `user`); spend
# tags
OPTIONS = frozenset({
    b"x-litellm-timeout", b"x-litellm-stream-timeout", b"x-litellm-num-retries", b"x-litellm-max-retries",
    b"cache-control", b"x-litellm-tags", *(name.encode() for name in END_USER_HEADERS),
})  # fmt: skip
# Objects the collector lets pile up before it looks for cycles. Python's 700 made it run every
# ~25 requests at c=64, each time walking the objects of the requests in flight and promoting them
# to older generations that then needed full collections (25 ms each): 5-6 % of the gateway's CPU
# (gc.callbacks, thread CPU time, bench chat c=64: ~360 ms of 6.2 s). The request path frees its
# objects by reference counting and makes next to no cycles: at 10,000, three collections ran in
# over 10,000 requests; what cycles there are (an exception's traceback) wait a little longer.
GC_YOUNG_THRESHOLD = 10_000
ERROR_BODIES: dict[str, Callable[[GatewayError], bytes]] = {
    "openai": openai.error_body,
    "anthropic": anthropic.error_body,
}


class Gateway:
    def __init__(
        self,
        settings: Settings,
        hook_list: Sequence[Hook] | None = None,
        transport: Transport | None = None,
        *,
        metrics: Metrics | None = None,
        store: Store | None = None,
    ) -> None:
        """`hook_list`: the ordered hooks (default: hooks.build for the settings); `transport`: how
        providers are reached (default: pooled HTTP/1.1; tests pass a MockTransport); `metrics`:
        what /metrics shows (None: metrics are off; its hook is in `hook_list`); `store`: keys,
        teams, budgets and spend (None: the master key only, the management API answers 501)."""
        if hook_list is None:
            hook_list = hooks.build(hooks.Features(master_key=settings.master_key, settings=settings))
        self.transport: Transport = transport or HTTPTransport()
        self.pipeline = Pipeline(hook_list)
        self.cache = next((hook for hook in hook_list if isinstance(hook, Cache)), None)  # for /cache/*
        # counts the router's deployments with the caller's limits, where it can (RateLimits.share)
        self.limits = next((hook for hook in hook_list if isinstance(hook, RateLimits)), None)
        self.workers = 1  # worker processes serving (server.serve sets it)
        self._metrics = metrics
        self.store = store
        self.settings = settings
        # the request headers read into ctx.header_options: LiteLLM's, the end user's the config names
        # (general_settings.user_header_mappings) and the spend tags' (litellm_settings.
        # extra_spend_tag_headers): read at start, as the hooks read them
        self.options = OPTIONS | {
            name.lower().encode()
            for name in (
                *settings.file.general_settings.end_user_headers(),
                *settings.file.litellm_settings.extra_spend_tag_headers,
            )
        }
        # the models added through /model/new, kept in the store (model_sync.py)
        self.model_sync = ModelSync(self, store, settings.models_poll) if store is not None else None
        self._swapping = asyncio.Lock()
        self._use(settings, Deployments(settings))
        self.reloader: Reloader | None = None  # SIGHUP / --watch-config (reload.py), set by the CLI

    def _use(self, settings: Settings, deployments: Deployments, draining: bool = False) -> None:
        """Everything the config decides. A request holds the front it started with to its end.
        What may refuse the config (ConfigError) is built first, so a refusal changes nothing."""
        router = Router(settings, deployments, self.transport)
        admin_app = admin.build(settings, self.store, deployments, self.model_sync, self.cache, lambda: self.workers)
        self.settings = settings
        self.deployments = deployments
        self.router = router
        self.openai = openai.OpenAIFront(self.router, want_usage=self.pipeline.needs_usage or router.counts_tokens)
        self.anthropic = anthropic.AnthropicFront(self.router)
        self.models = ModelsFront(deployments)
        cache = self.cache.config.type if self.cache is not None else None
        self.health = HealthFront(deployments, self.router.health, self.store, cache)
        self.health.draining = draining
        self.admin = admin_app
        keys = (settings.master_key or "", settings.metrics_key or "")
        self.metrics = MetricsFront(self._metrics, keys, settings.metrics_auth)
        if self.limits is not None:
            self.limits.share(router)
        if self.cache is not None:
            shared, warnings = caching_groups(settings, {*deployments.model_names(), *deployments.aliases})
            announce(deployments.settings, warnings)  # (quiet when only the stored models changed)
            self.cache.share(shared)
        if self._metrics is not None:
            self.router.on_cooldown = self._metrics.cooled_down_now
            self.router.proxy.answers = self._metrics.answers
            if isinstance(self.transport, HTTPTransport):
                self._metrics.connections = self.transport.connections
            if self.store is not None:
                self._metrics.watch_budgets(self.store.budgeted)

    async def reload(self, settings: Settings) -> None:
        """Swaps in a new config (ConfigError: refused, the old one stays). Requests in flight
        finish on the old one; the upstream pools are kept."""
        if settings.master_key != self.settings.master_key:
            raise ConfigError(f"{settings.source}: the master key changed: restart the gateway to change it")
        await self._swap(settings, None)

    async def use_stored(self, stored: Sequence[ModelEntry]) -> None:
        """The models added through /model/new changed (model_sync.py): the same swap as a
        reload, over the config as it is."""
        await self._swap(None, stored)

    async def _swap(self, settings: Settings | None, stored: Sequence[ModelEntry] | None) -> None:
        """None: what is served now (a reload keeps the stored models, a stored change the config)."""
        async with self._swapping:  # one at a time: neither undoes the other
            quiet = settings is None  # the config's warnings were logged when it was loaded
            settings = settings or self.settings
            stored = self.deployments.stored if stored is None else stored
            deployments = Deployments(dataclasses.replace(settings, announce=False) if quiet else settings, stored)
            old = self.router
            self.transport.open(_origins(deployments))  # the new origins' pools; known ones are kept
            self._use(settings, deployments, self.health.draining)
            await self.router.start()
            await old.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.store is not None:
                    await self.store.open()
                if self.model_sync is not None:
                    await self._load_stored(self.model_sync)
                self.transport.open(_origins(self.deployments))
                # What exists now (modules, config) lives as long as the process: keep it out of
                # the collector's reach so collections only walk per-request garbage.
                gc.collect()
                gc.freeze()
                gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
                await self.router.start()
                if self._metrics is not None:
                    self._metrics.start()  # the periodic push of the request path's counts
                if self.reloader is not None:
                    self.reloader.start(self)
                if self.model_sync is not None:
                    self.model_sync.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.health.draining = True
                if self.reloader is not None:
                    await self.reloader.stop()
                if self.model_sync is not None:
                    await self.model_sync.stop()
                await self.router.stop()
                await self.pipeline.close()  # (the limits' leases: settled in Redis)
                if self.store is not None:
                    await self.store.close()  # the spend not yet written
                if self._metrics is not None:
                    await self._metrics.stop()  # the counts not yet pushed (multiprocess: into the files)
                await self.transport.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load_stored(self, sync: ModelSync) -> None:
        """The stored models, before the first request (the router has not started yet)."""
        try:
            stored = await sync.load()
        except Exception as exc:  # the database is away: serve the config; the poll tries again
            log.warning("models stored in the database not read at the start: %s", reason_of(exc))
            return
        if stored:
            deployments = Deployments(dataclasses.replace(self.settings, announce=False), stored)
            self._use(self.settings, deployments)
            sync.report(deployments)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx, length = _context(scope, self.options)
        if not ctx.route.pipeline:  # the probes and the management API: no hooks
            if ctx.route is routes.ADMIN:
                await self.admin(scope, receive, send)  # type: ignore[arg-type]
                return
            await self._probe(ctx, send)
            return
        try:
            await self._serve(ctx, length, receive, send)
        except GatewayError as exc:
            await self._error(ctx, exc, send)
        except Exception:
            # A bug, not bad input: still one clear answer in the client's error shape, and the
            # traceback (which holds no request data) in the log under the request id.
            log.exception("request %s failed", ctx.id)
            bug = GatewayError(f"internal error; the gateway log has the details under request id {ctx.id}")
            await self._error(ctx, bug, send)
        ctx.finish(ctx.status or 499)  # no status: the client left before the answer (nginx's 499)
        if self.pipeline.has_after:
            if self.pipeline.after_plain:
                self.pipeline.after_now(ctx)
            else:
                await self.pipeline.after(ctx)

    async def _serve(self, ctx: RequestContext, length: int, receive: Receive, send: Send) -> None:
        route = ctx.route
        if route is routes.NOT_FOUND:
            raise GatewayError(f"no route for {ctx.path}", status=404, code="not_found")
        if ctx.method != route.method:
            raise GatewayError(f"{ctx.path} accepts {route.method}", status=405, code="method_not_allowed")
        if self.pipeline.has_on_request:
            if self.pipeline.on_request_plain:
                self.pipeline.on_request_now(ctx)
            else:
                await self.pipeline.on_request(ctx)
        if not route.body:
            if self.pipeline.has_before and (answer := await self.pipeline.before(ctx, None)) is not None:
                await send_bytes(send, ctx, answer.status, answer.body, answer.content_type)
                return
            await send_json(send, ctx, 200, self._get(ctx))
            return
        if length > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
        raw = await read_body(receive)
        if raw is None:
            return  # the client went away
        parsed = parse(raw, route.name)
        body = read_request(ctx, parsed, anthropic.KEPT_FIELDS if route.front == "anthropic" else frozenset())
        if body is not parsed:
            raw = b""  # the client's bytes held fields that must not go upstream
        ctx.body_bytes = raw
        if self.pipeline.has_before and (answer := await self.pipeline.before(ctx, body)) is not None:
            ctx.response_headers.extend(answer.headers)
            await send_bytes(send, ctx, answer.status, answer.body, answer.content_type)
            return
        watch = DisconnectWatch(receive)
        try:
            await self._post(ctx, body, raw, send)
        except asyncio.CancelledError:
            if watch.gone:
                return  # the client left; its upstream request was cancelled with this task
            raise
        finally:
            watch.close()

    def _post(self, ctx: RequestContext, body: dict[str, Any], raw: bytes, send: Send) -> Awaitable[None]:
        """The front's handler for the route, to be awaited by the caller (a plain function: an
        extra coroutine layer costs on every resume of the request's task)."""
        name = ctx.route.name
        if name == "messages":
            return self.anthropic.messages(ctx, body, raw, send)
        if name == "count_tokens":
            return self.anthropic.count_tokens(ctx, body, raw, send)
        return self.openai.handle(ctx, name, body, raw, send)  # type: ignore[arg-type]

    def _get(self, ctx: RequestContext) -> Any:
        name = ctx.route.name
        if name == "models":
            return self.models.list(ctx.caller)
        if name == "model":
            return self.models.get(routes.model_id(ctx.path), ctx.caller)
        if name == "model_info":
            return self.models.model_info(ctx.caller, ctx.query)
        if name == "model_info_v2":
            return self.models.model_info_v2(ctx.caller, ctx.query)
        if name == "model_group_info":
            return self.models.model_group_info(ctx.caller, ctx.query)
        return self.health.report(parse_qs(ctx.query.decode("latin-1")).get("model", [None])[0])

    async def _probe(self, ctx: RequestContext, send: Send) -> None:
        try:
            if ctx.method != "GET":
                raise GatewayError(f"{ctx.path} accepts GET", status=405, code="method_not_allowed")
            if ctx.route is routes.METRICS:
                await send_bytes(send, ctx, 200, await self.metrics.scrape(ctx), CONTENT_TYPE)
                return
            await send_json(send, ctx, 200, self.health.alive() if ctx.route is routes.ALIVE else self.health.ready())
        except GatewayError as exc:
            await self._error(ctx, exc, send)

    async def _error(self, ctx: RequestContext, exc: GatewayError, send: Send) -> None:
        ctx.error = exc
        headers = ctx.response_headers
        if ctx.deployment is not None and not any(name == b"x-litellm-model-id" for name, _ in headers):
            route_headers(ctx)
        headers.extend((k.lower().encode(), v.encode()) for k, v in exc.headers.items())
        await send_bytes(send, ctx, exc.status, ERROR_BODIES[ctx.route.front](exc))


def _origins(deployments: Deployments) -> set[str]:
    return {origin_of(d.target.api_base) for d in deployments.all()}


def _context(scope: Scope, options_named: frozenset[bytes] = OPTIONS) -> tuple[RequestContext, int]:
    """The request's context from its line and headers; also the declared body length.
    `options_named`: the headers kept in ctx.header_options (OPTIONS, and the config's)."""
    path: str = scope["path"]
    ctx = RequestContext("", routes.match(path), scope["method"], path)
    if query := scope.get("query_string"):
        ctx.query = query
    length = 0
    request_id = b""
    forwarded: dict[str, str] | None = None
    options: dict[str, str] | None = None
    for name, value in scope["headers"]:
        if name == b"authorization" or name == b"x-api-key" or name == b"api-key":
            ctx.credential = value
        elif name == b"x-request-id":
            request_id = value  # echoed as sent; the logs get at most 128 characters of it
            ctx.id = value.decode("latin-1")[:128]
        elif name == b"content-length":
            length = int(value) if value.isdigit() else 0
        elif name in FORWARDED:
            forwarded = forwarded or {}
            forwarded[name.decode()] = value.decode("latin-1")
        elif name in options_named:
            options = options or {}
            options[name.decode()] = value.decode("latin-1")
    if forwarded:
        ctx.client_headers = forwarded
    if options:
        ctx.header_options = options
    if not ctx.id:
        ctx.id = new_request_id()
        request_id = ctx.id.encode()
    ctx.response_headers = [(b"x-request-id", request_id), (b"x-litellm-call-id", request_id)]
    return ctx, length
