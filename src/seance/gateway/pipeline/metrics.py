"""Prometheus metrics of every API request, recorded once its last byte is sent (see
`seance.gateway.metrics` for the metrics and their labels). First in the hook list: its
on_request counts the request in flight before anything can refuse it, and its after runs last,
with the outcome complete.

Per request: one tuple of labels, one dictionary lookup for the label set's series (made on first
use), then a few additions to plain numbers — nothing is formatted, allocated or locked per series.
`push` (the metrics' periodic task, a scrape, the shutdown) hands them to prometheus_client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seance.gateway import routes
from seance.gateway.context import Caller, RequestContext
from seance.gateway.metrics import MAX_SERIES, Count, Metrics, setter, tally, who
from seance.gateway.pipeline import Hook
from seance.gateway.upstream import public_url
from seance.gateway.upstream.transport import origin_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from seance.gateway.routing.deployments import Deployment


class _Series:
    """What one label set (who, requested model, model, status, error) counted since the last push."""

    __slots__ = (
        "api_latency", "failed", "input_tokens", "latency", "output_tokens", "pending", "rate_limited", "spend",
        "total", "total_tokens", "ttft",
    )  # fmt: skip

    def __init__(self, m: Metrics, key: tuple[Any, ...]) -> None:
        people, requested, model, status, error = key
        self.pending = False  # in the hook's list of series to push
        self.total = Count(m.total.labels(*people, requested, str(status)))
        self.latency = tally(m.latency.labels(*people, requested, model))
        self.api_latency = tally(m.api_latency.labels(*people, requested, model))
        self.ttft = tally(m.ttft.labels(*people, requested, model))
        self.input_tokens = Count(m.input_tokens.labels(*people, requested, model))
        self.output_tokens = Count(m.output_tokens.labels(*people, requested, model))
        self.total_tokens = Count(m.total_tokens.labels(*people, requested, model))
        self.spend = Count(m.spend.labels(*people, model))
        self.failed = Count(m.failed.labels(*people, requested, str(status), error)) if status >= 400 else None
        self.rate_limited = Count(m.rate_limited.labels(*people, requested)) if status == 429 else None

    def push(self) -> None:
        self.pending = False  # first: a push that fails leaves its amounts to the next one
        self.total.push()
        self.latency.push()
        self.api_latency.push()
        self.ttft.push()
        self.input_tokens.push()
        self.output_tokens.push()
        self.total_tokens.push()
        self.spend.push()
        if self.failed is not None:
            self.failed.push()
        if self.rate_limited is not None:
            self.rate_limited.push()


class _Watched:
    """A deployment's state and its origin's connections."""

    __slots__ = ("connections", "state", "url", "value")

    def __init__(self, state: Callable[[float], None], connections: Callable[[float], None] | None, url: str) -> None:
        self.state, self.connections, self.url, self.value = state, connections, url, -1


class MetricsHook(Hook):
    name = "metrics"
    needs_usage = True  # token counters of streams

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.in_flight = Count(metrics.in_flight)
        self._series: dict[tuple[Any, ...], _Series] = {}
        # (caller, model, deployment, status, error) by identity -> its series: the same callers
        # (cached keys keep their Caller) and deployments come again and again
        self._seen: dict[tuple[Any, ...], tuple[Caller | None, Deployment | None, _Series, str]] = {}
        self._pending: list[_Series] = []  # the series counted in since the last push
        self._cache: dict[tuple[bool, str], Count] = {}
        self._deployments: dict[str, _Watched] = {}
        metrics.pushers.append(self.push)

    async def on_request(self, ctx: RequestContext) -> None:
        self.in_flight.amount += 1

    async def after(self, ctx: RequestContext) -> None:
        route = ctx.route
        if route is not routes.NOT_FOUND and ctx.method == route.method:  # on_request ran: in flight
            self.in_flight.amount -= 1
        if not route.body:
            return  # /v1/models, /health: not LLM requests
        m = self.metrics
        deployment = ctx.deployment
        status = ctx.status
        error = "" if status < 400 else type(ctx.error).__name__ if ctx.error is not None else "ClientDisconnected"
        caller = ctx.caller
        # the series of this caller, model, deployment and outcome, found again without making its labels
        seen = (id(caller), ctx.model, id(deployment), status, error)
        known = self._seen.get(seen)
        if known is not None and known[0] is caller and known[1] is deployment:  # (ids are reused once freed)
            series, requested = known[2], known[3]
        else:
            requested = m.models.requested(ctx)
            model = m.models.of(deployment) if deployment is not None else requested
            key = (who(caller), requested, model, status, error)
            found = self._series.get(key)
            if found is None:
                found = _Series(m, key)
                if len(self._series) >= MAX_SERIES:
                    self._series.clear()  # the pending list still holds what was not pushed
                self._series[key] = found
            series = found
            if len(self._seen) >= MAX_SERIES:
                self._seen.clear()
            self._seen[seen] = (caller, deployment, series, requested)
        if not series.pending:
            series.pending = True
            self._pending.append(series)
        series.total.amount += 1
        if series.failed is not None:
            series.failed.amount += 1
        ended = ctx.ended
        if ended is not None:
            series.latency.observe(ended - ctx.received)
        if series.rate_limited is not None and deployment is None:
            series.rate_limited.amount += 1  # refused by the gateway, not by a provider
        if ctx.cache_hit or ctx.cache_checked:
            cache = self._cache.get((ctx.cache_hit, requested))
            if cache is None:
                result = "hit" if ctx.cache_hit else "miss"
                cache = self._cache[(ctx.cache_hit, requested)] = Count(m.cache.labels(result, requested))
            cache.amount += 1
        if deployment is None or ctx.cache_hit:
            return
        # the provider's part
        if ended is not None and ctx.upstream_sent is not None:
            series.api_latency.observe(ended - ctx.upstream_sent)
            if ctx.stream and ctx.client_first_byte is not None:
                series.ttft.observe(ctx.client_first_byte - ctx.received)
        usage = ctx.usage
        if usage is not None:
            series.input_tokens.amount += usage.prompt_tokens
            series.output_tokens.amount += usage.completion_tokens
            series.total_tokens.amount += usage.prompt_tokens + usage.completion_tokens
        if ctx.cost:
            series.spend.amount += ctx.cost
        watched = self._deployments.get(deployment.id)
        if watched is None:
            watched = self._watch(deployment)
        state = 0 if status < 400 else 1 if ctx.upstream_first_byte is not None or status >= 500 else watched.value
        if state != watched.value:  # written on a change only (the most recent write of any worker wins)
            watched.value = state
            watched.state(state)

    def push(self) -> None:
        """The counts since the last push into prometheus_client; the connections as they are now."""
        self.in_flight.push()
        pending = self._pending
        while pending:
            pending.pop().push()
        for cache in self._cache.values():
            cache.push()
        connections = self.metrics.connections
        if connections is not None:
            for watched in self._deployments.values():
                if watched.connections is not None:
                    watched.connections(connections(watched.url))

    def _watch(self, deployment: Deployment) -> _Watched:
        m = self.metrics
        labels = m.deployment_labels(deployment)
        base = labels[2]  # api_base without credentials; empty for a wildcard's deployments
        origin = public_url(origin_of(base)) if base else ""
        connections = setter(m.upstream_connections.labels(origin)) if origin else None
        watched = _Watched(setter(m.deployment_state.labels(*labels)), connections, deployment.target.api_base)
        if len(self._deployments) >= MAX_SERIES:
            self._deployments.clear()
        self._deployments[deployment.id] = watched
        return watched
