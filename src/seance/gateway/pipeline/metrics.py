"""Prometheus metrics of every API request, recorded once its last byte is sent (see
`seance.gateway.metrics` for the metrics and their labels). First in the hook list: its
on_request counts the request in flight before anything can refuse it, and its after runs last,
with the outcome complete.

Per request: one tuple of labels, one dictionary lookup for the label set's series (made on first
use), then a few increments — nothing is formatted or allocated per series.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from seance.gateway import routes
from seance.gateway.context import RequestContext
from seance.gateway.metrics import MAX_SERIES, Metrics, adder, observer, setter, who
from seance.gateway.pipeline import Hook
from seance.gateway.upstream import public_url
from seance.gateway.upstream.transport import origin_of

if TYPE_CHECKING:
    from seance.gateway.routing.deployments import Deployment


class _Series:
    """What one label set (who, requested model, model, status, error) records, ready to call."""

    __slots__ = (
        "api_latency", "failed", "input_tokens", "latency", "output_tokens", "rate_limited", "spend",
        "total", "total_tokens", "ttft",
    )  # fmt: skip

    def __init__(self, m: Metrics, key: tuple[Any, ...]) -> None:
        people, requested, model, status, error = key
        self.total = adder(m.total.labels(*people, requested, str(status)))
        self.latency = observer(m.latency.labels(*people, requested, model))
        self.api_latency = observer(m.api_latency.labels(*people, requested, model))
        self.ttft = observer(m.ttft.labels(*people, requested, model))
        self.input_tokens = adder(m.input_tokens.labels(*people, requested, model))
        self.output_tokens = adder(m.output_tokens.labels(*people, requested, model))
        self.total_tokens = adder(m.total_tokens.labels(*people, requested, model))
        self.spend = adder(m.spend.labels(*people, model))
        self.failed = adder(m.failed.labels(*people, requested, str(status), error)) if status >= 400 else None
        self.rate_limited = adder(m.rate_limited.labels(*people, requested)) if status == 429 else None


class _Watched:
    """A deployment's state and its origin's connections."""

    __slots__ = ("connections", "state", "value")

    def __init__(self, state: Callable[[float], None], connections: Callable[[float], None] | None) -> None:
        self.state, self.connections, self.value = state, connections, -1


class MetricsHook(Hook):
    name = "metrics"
    needs_usage = True  # token counters of streams

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.in_flight = adder(metrics.in_flight)
        self._series: dict[tuple[Any, ...], _Series] = {}
        self._cache: dict[tuple[bool, str], Callable[[float], None]] = {}
        self._deployments: dict[str, _Watched] = {}

    async def on_request(self, ctx: RequestContext) -> None:
        self.in_flight(1)

    async def after(self, ctx: RequestContext) -> None:
        route = ctx.route
        if route is not routes.NOT_FOUND and ctx.method == route.method:  # on_request ran: in flight
            self.in_flight(-1)
        if not route.body:
            return  # /v1/models, /health: not LLM requests
        m = self.metrics
        deployment = ctx.deployment
        requested = m.models.requested(ctx)
        model = m.models.of(deployment) if deployment is not None else requested
        status = ctx.status
        error = "" if status < 400 else type(ctx.error).__name__ if ctx.error is not None else "ClientDisconnected"
        key = (who(ctx.caller), requested, model, status, error)
        series = self._series.get(key)
        if series is None:
            series = _Series(m, key)
            if len(self._series) >= MAX_SERIES:
                self._series.clear()
            self._series[key] = series
        series.total(1)
        if series.failed is not None:
            series.failed(1)
        ended = ctx.ended
        if ended is not None:
            series.latency(ended - ctx.received)
        if series.rate_limited is not None and deployment is None:
            series.rate_limited(1)  # refused by the gateway, not by a provider
        if ctx.cache_hit or ctx.cache_checked:
            cache = self._cache.get((ctx.cache_hit, requested))
            if cache is None:
                result = "hit" if ctx.cache_hit else "miss"
                cache = self._cache[(ctx.cache_hit, requested)] = adder(m.cache.labels(result, requested))
            cache(1)
        if deployment is None or ctx.cache_hit:
            return
        # the provider's part
        if ended is not None and ctx.upstream_sent is not None:
            series.api_latency(ended - ctx.upstream_sent)
            if ctx.stream and ctx.client_first_byte is not None:
                series.ttft(ctx.client_first_byte - ctx.received)
        usage = ctx.usage
        if usage is not None:
            series.input_tokens(usage.prompt_tokens)
            series.output_tokens(usage.completion_tokens)
            series.total_tokens(usage.prompt_tokens + usage.completion_tokens)
        if ctx.cost:
            series.spend(ctx.cost)
        watched = self._deployments.get(deployment.id)
        if watched is None:
            watched = self._watch(deployment)
        state = 0 if status < 400 else 1 if ctx.upstream_first_byte is not None or status >= 500 else watched.value
        if state != watched.value:  # written on a change only (the most recent write of any worker wins)
            watched.value = state
            watched.state(state)
        if watched.connections is not None and m.connections is not None:
            watched.connections(m.connections(deployment.target.api_base))

    def _watch(self, deployment: Deployment) -> _Watched:
        m = self.metrics
        labels = m.deployment_labels(deployment)
        base = labels[2]  # api_base without credentials; empty for a wildcard's deployments
        origin = public_url(origin_of(base)) if base else ""
        connections = setter(m.upstream_connections.labels(origin)) if origin else None
        watched = _Watched(setter(m.deployment_state.labels(*labels)), connections)
        if len(self._deployments) >= MAX_SERIES:
            self._deployments.clear()
        self._deployments[deployment.id] = watched
        return watched
