"""Prometheus metrics of every API request, recorded once its last byte is sent (see
`seance.gateway.metrics` for the metrics and their labels). First in the hook list: its
on_request counts the request in flight before anything can refuse it, and its after runs last,
with the outcome complete.

Per request: one tuple of labels, one dictionary lookup for the label set's series (made on first
use), then a few additions to plain numbers — nothing is formatted, allocated or locked per series.
`push` (the metrics' periodic task, a scrape, the shutdown) hands them to prometheus_client.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from seance.gateway import routes
from seance.gateway.context import Caller, RequestContext
from seance.gateway.metrics import MAX_SERIES, Count, Metrics, adder, route_of, setter, tally, who
from seance.gateway.pipeline import Hook
from seance.gateway.upstream import public_url
from seance.gateway.upstream.transport import origin_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from seance.gateway.routing.deployments import Deployment
    from seance.gateway.upstream import UpstreamResponse


class _Series:
    """What one label set (who, requested model, model, the deployment that answered, route,
    status, error) counted since the last push.
    The request path adds to plain numbers on it (`requests`, `prompt`, `completion`, `cost`: one
    attribute each, ~700 instructions a request less than adding to the six counters' batches);
    the push moves them into those batches, which keep what a failing push did not hand over."""

    __slots__ = (
        "api_latency", "completion", "cost", "failed", "input_tokens", "latency", "output_tokens", "pending", "prompt",
        "rate_limited", "requests", "spend", "succeeded", "total", "total_tokens", "ttft",
    )  # fmt: skip

    def __init__(self, m: Metrics, key: tuple[Any, ...]) -> None:
        people, email, requested, model, answered_by, route, status, error = key
        self.pending = False  # in the hook's list of series to push
        self.requests = self.prompt = self.completion = 0
        self.cost = 0.0
        self.total = Count(m.total.labels(*people, requested, str(status), email, route, *answered_by))
        by_latency = (*people, requested, model, model, *answered_by)  # (model_group: the group, as `model`)
        self.latency = tally(m.latency.labels(*by_latency))
        self.api_latency = tally(m.api_latency.labels(*by_latency))
        self.ttft = tally(m.ttft.labels(*by_latency))
        by_usage = (*people, requested, model, email, *answered_by)
        self.input_tokens = Count(m.input_tokens.labels(*by_usage))
        self.output_tokens = Count(m.output_tokens.labels(*by_usage))
        self.total_tokens = Count(m.total_tokens.labels(*by_usage))
        self.spend = Count(m.spend.labels(*by_usage))
        self.succeeded = Count(m.requests.labels(*by_usage)) if status < 400 else None
        self.failed = (
            Count(m.failed.labels(*people, requested, str(status), error, email, route, *answered_by))
            if status >= 400
            else None
        )
        self.rate_limited = Count(m.rate_limited.labels(*people, requested)) if status == 429 else None

    def push(self) -> None:
        self.pending = False  # first: a push that fails leaves its amounts to the next one
        requests, prompt, completion, cost = self.requests, self.prompt, self.completion, self.cost
        self.requests = self.prompt = self.completion = 0
        self.cost = 0.0
        self.total.amount += requests
        if self.failed is not None:
            self.failed.amount += requests  # (a series of a failed status counts failures only)
        if self.succeeded is not None:
            self.succeeded.amount += requests
        if prompt or completion:
            self.input_tokens.amount += prompt
            self.output_tokens.amount += completion
            self.total_tokens.amount += prompt + completion
        if cost:
            self.spend.amount += cost
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
        if self.succeeded is not None:
            self.succeeded.push()
        if self.rate_limited is not None:
            self.rate_limited.push()


# what a provider's rate limits have left, under the names UpstreamResponse.rate_limits gives them
REQUESTS_LEFT, TOKENS_LEFT = b"x-ratelimit-remaining-requests", b"x-ratelimit-remaining-tokens"


class _Watched:
    """A deployment's state, its origin's connections, and what the provider's rate limits have left
    (read from its last answer once a push, not once a request)."""

    __slots__ = ("connections", "requests_left", "state", "tokens_left", "url", "value")

    def __init__(
        self,
        state: Callable[[float], None],
        connections: Callable[[float], None] | None,
        url: str,
        left: tuple[Callable[[float], None], Callable[[float], None]],
    ) -> None:
        self.state, self.connections, self.url, self.value = state, connections, url, -1
        self.requests_left, self.tokens_left = left

    def read_quota(self, answer: UpstreamResponse) -> None:
        """What the answer's rate-limit headers (any provider's, under OpenAI's names) have left."""
        for name, value in answer.rate_limits:
            left = self.requests_left if name == REQUESTS_LEFT else self.tokens_left if name == TOKENS_LEFT else None
            if left is not None:
                with contextlib.suppress(ValueError):
                    left(float(value))


class _Seen:
    """What one (caller, model, deployment, status, error, path) counts in, found again by identity
    without making its labels: the same callers (cached keys keep their Caller) and deployments
    come again and again. The cache's two counters and the deployment's state are looked up once
    here too, not once a request."""

    __slots__ = (
        "cache_hit", "cache_miss", "caller", "deployed", "deployment", "error", "model", "path", "people",
        "requested", "series", "status", "watched",
    )  # fmt: skip

    def __init__(
        self,
        key: tuple[Any, ...],
        caller: Caller | None,
        deployment: Deployment | None,
        series: _Series,
        requested: str,
    ) -> None:
        _, self.model, _, self.status, self.error, self.path = key
        self.caller, self.deployment, self.series, self.requested = caller, deployment, series, requested
        self.people = who(caller)
        self.cache_hit: _CacheCount | None = None
        self.cache_miss: _CacheCount | None = None
        self.watched: _Watched | None = None
        self.deployed: _Deployed | None = None  # a deployment's successful calls (status < 400)


class _Deployed:
    """A deployment's successful calls by one caller and requested model: LiteLLM's per-deployment
    counters (total and successes, one addition) and latencies (per output token, the gateway's
    overhead)."""

    __slots__ = ("calls", "overhead", "per_token")

    def __init__(self, m: Metrics, labels: tuple[str, ...], requested: str, people: tuple[str, ...]) -> None:
        group, model_id, api_base, provider = labels
        key_and_team = people[1:5]
        by_deployment = (group, requested, *labels, *key_and_team)
        self.calls = Count(m.deployment_total.labels(*by_deployment), m.deployment_success.labels(*by_deployment))
        self.per_token = tally(m.per_token.labels(group, *labels, *key_and_team))
        self.overhead = tally(m.overhead.labels(group, provider, api_base, group, *people[1:3], model_id))

    def push(self) -> None:
        self.calls.push()
        self.per_token.push()
        self.overhead.push()


class _CacheCount(Count):
    """A cache result's count for one caller and model (pushed into the gateway's own counter and
    LiteLLM's), and on a hit the tokens of the answers served."""

    __slots__ = ("_add_tokens", "tokens")

    def __init__(self, series: Any, *more: Any, tokens: Any = None) -> None:
        super().__init__(series, *more)
        self.tokens = 0
        self._add_tokens = adder(tokens) if tokens is not None else None

    def push(self) -> None:
        super().push()
        if self.tokens and self._add_tokens is not None:
            self._add_tokens(self.tokens)
            self.tokens = 0


# a series whose counts were not pushed for this many requests pushes them itself: the latencies
# are kept one by one until a push (metrics.Tally), and a push that does not come (no event loop
# running it, a stalled one) must not grow them without bound
PUSH_AFTER = 10_000


class MetricsHook(Hook):
    name = "metrics"
    needs_usage = True  # token counters of streams

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.in_flight = Count(metrics.in_flight)
        # requests begun less requests ended since the last push: a plain int on the hook, moved
        # into in_flight at the push (one attribute less to read twice a request)
        self.flying = 0
        self._series: dict[tuple[Any, ...], _Series] = {}
        # (id(caller), model, id(deployment), status, error, path) -> what it counts in (_Seen)
        self._seen: dict[tuple[Any, ...], _Seen] = {}
        # the last request's: under load most requests are the same caller, model, deployment, path
        # and outcome as the one before, found by six comparisons instead of a tuple made, hashed
        # and compared for the dict (~1,500 instructions)
        self._last: _Seen | None = None
        self._pending: list[_Series] = []  # the series counted in since the last push
        self._cache: dict[tuple[Any, ...], _CacheCount] = {}
        self._deployed: dict[tuple[Any, ...], _Deployed] = {}
        self._deployments: dict[str, _Watched] = {}
        metrics.pushers.append(self.push)

    def on_request_now(self, ctx: RequestContext) -> None:
        self.flying += 1

    async def on_request(self, ctx: RequestContext) -> None:
        self.on_request_now(ctx)

    async def after(self, ctx: RequestContext) -> None:
        self.after_now(ctx)

    def after_now(self, ctx: RequestContext) -> None:
        route = ctx.route
        if not route.body:  # /v1/models, /health: not LLM requests
            if route is not routes.NOT_FOUND and ctx.method == route.method:  # on_request ran: in flight
                self.flying -= 1
            return
        if ctx.method == route.method:  # on_request ran (NOT_FOUND reads no body): in flight
            self.flying -= 1
        deployment = ctx.deployment
        status = ctx.status
        error = "" if status < 400 else type(ctx.error).__name__ if ctx.error is not None else "ClientDisconnected"
        caller = ctx.caller
        model = ctx.model
        path = ctx.path
        known = self._last
        if (
            known is None or known.caller is not caller or known.deployment is not deployment
            or known.status != status or known.model != model or known.error != error or known.path != path
        ):  # fmt: skip
            known = self._seen.get((id(caller), model, id(deployment), status, error, path))
            if known is None or known.caller is not caller or known.deployment is not deployment:  # (ids are reused)
                known = self._learn(ctx, caller, deployment, status, error)
            self._last = known
        series = known.series
        if not series.pending:
            series.pending = True
            self._pending.append(series)
        if series.requests >= PUSH_AFTER:
            series.push()
        series.requests += 1  # (and a failure, in a failed status's series: added up at the push)
        ended = ctx.ended
        if ended is not None:
            series.latency.observe(ended - ctx.received)
        if series.rate_limited is not None and deployment is None:
            series.rate_limited.amount += 1  # refused by the gateway, not by a provider
        # (each read once: a context attribute a request did not set is a class default, read by the
        # generic attribute lookup, as the fields of Usage, a dataclass with defaults, are)
        hit = ctx.cache_hit
        usage = ctx.usage
        if hit:
            counted = known.cache_hit or self._cache_count(known, True)
            counted.amount += 1
            if usage is not None:
                counted.tokens += usage.prompt_tokens + usage.completion_tokens
        elif ctx.cache_checked:
            (known.cache_miss or self._cache_count(known, False)).amount += 1
        tried = ctx.failed_attempts
        if tried:  # (rare: counted at once, not batched)
            self._failed_tries(known, tried)
        if ctx.fallbacks:
            self._fell_back(known, deployment, status, tried)
        if deployment is None or hit:
            return
        # the provider's part
        sent = ctx.upstream_sent
        deployed = known.deployed
        if deployed is None and status < 400:
            deployed = known.deployed = self._deployed_of(known, deployment)
        if deployed is not None:
            deployed.calls.amount += 1
            if sent is not None:
                # the gateway's time before the provider's first try (auth, limits, cache, routing)
                deployed.overhead.observe(((tried[0][2] or sent) if tried else sent) - ctx.received)
                if ended is not None and usage is not None and usage.completion_tokens:
                    deployed.per_token.observe((ended - sent) / usage.completion_tokens)
        if ended is not None and sent is not None:
            series.api_latency.observe(ended - sent)
            if ctx.stream and ctx.client_first_byte is not None:
                series.ttft.observe(ctx.client_first_byte - ctx.received)
        if usage is not None:
            series.prompt += usage.prompt_tokens
            series.completion += usage.completion_tokens
        cost = ctx.cost
        if cost:
            series.cost += cost
        watched = known.watched
        if watched is None:
            watched = known.watched = self._deployments.get(deployment.id) or self._watch(deployment)
        state = 0 if status < 400 else 1 if ctx.upstream_first_byte is not None or status >= 500 else watched.value
        if state != watched.value:  # written on a change only (the most recent write of any worker wins)
            watched.value = state
            watched.state(state)

    def _learn(
        self, ctx: RequestContext, caller: Caller | None, deployment: Deployment | None, status: int, error: str
    ) -> _Seen:
        """The series of a caller, model, deployment and outcome not seen yet: its labels made."""
        m = self.metrics
        requested = m.models.requested(ctx)
        model = m.models.of(deployment) if deployment is not None else requested
        email = (caller.user_email or "") if caller is not None else ""
        key = (who(caller), email, requested, model, m.answered_by(deployment), route_of(ctx.path), status, error)
        series = self._series.get(key)
        if series is None:
            series = _Series(m, key)
            if len(self._series) >= MAX_SERIES:
                self._series.clear()  # the pending list still holds what was not pushed
            self._series[key] = series
        if len(self._seen) >= MAX_SERIES:
            self._seen.clear()
        seen = (id(caller), ctx.model, id(deployment), status, error, ctx.path)
        known = self._seen[seen] = _Seen(seen, caller, deployment, series, requested)
        return known

    def _cache_count(self, known: _Seen, hit: bool) -> _CacheCount:
        """The cache's count of a hit or a miss of a caller and model (one per label set, shared):
        into seance_cache_requests and LiteLLM's litellm_cache_hits_metric / _misses_metric."""
        m = self.metrics
        requested, people = known.requested, known.people
        deployment = known.deployment
        model_id, provider = m.answered_by(deployment)
        key = (hit, requested, people, model_id, provider)
        count = self._cache.get(key)
        if count is None:
            if len(self._cache) >= MAX_SERIES:
                self._push_each(self._cache)
                self._cache.clear()
            end_user, key_hash, alias, team, team_alias, user = people
            labels = (requested, key_hash, alias, team, team_alias, end_user, user, model_id, provider)
            own = m.cache.labels("hit" if hit else "miss", requested)
            count = self._cache[key] = (
                _CacheCount(own, m.cache_hits.labels(*labels), tokens=m.cached_tokens.labels(*labels))
                if hit
                else _CacheCount(own, m.cache_misses.labels(*labels))
            )
        if hit:
            known.cache_hit = count
        else:
            known.cache_miss = count
        return count

    def _deployed_of(self, known: _Seen, deployment: Deployment) -> _Deployed:
        labels = self.metrics.deployment_labels(deployment)
        key = (labels, known.requested, known.people)
        deployed = self._deployed.get(key)
        if deployed is None:
            if len(self._deployed) >= MAX_SERIES:
                self._push_each(self._deployed)
                self._deployed.clear()
            deployed = self._deployed[key] = _Deployed(self.metrics, labels, known.requested, known.people)
        return deployed

    def _failed_tries(self, known: _Seen, tried: tuple[tuple[Any, ...], ...]) -> None:
        """LiteLLM's per-deployment counts of the tries that failed (each is a call too)."""
        m = self.metrics
        key_and_team = known.people[1:5]
        for deployment, status, _, _, error in tried:
            labels = m.deployment_labels(deployment)
            by_deployment = (labels[0], known.requested, *labels, *key_and_team)
            m.deployment_total.labels(*by_deployment).inc()
            m.deployment_failure.labels(*by_deployment, str(status or ""), error).inc()

    def _fell_back(
        self, known: _Seen, deployment: Deployment | None, status: int, tried: tuple[tuple[Any, ...], ...]
    ) -> None:
        """LiteLLM's fallback counters: the group that answered (or was tried last), and the failure
        of the group before it that made the request fall back (none when it was cooling down)."""
        m = self.metrics
        group, model_id, _, _ = m.deployment_labels(deployment) if deployment is not None else ("", "", "", "")
        last = deployment.model_name if deployment is not None else None
        cause = next((t for t in reversed(tried) if t[0].model_name != last), None)
        status_, error = (str(cause[1] or ""), cause[4]) if cause is not None else ("", "")
        labels = (known.requested, group, *known.people[1:5], status_, error, model_id)
        (m.fallback_success if status < 400 else m.fallback_failure).labels(*labels).inc()

    @staticmethod
    def _push_each(table: dict[Any, _CacheCount] | dict[Any, _Deployed]) -> None:
        for counted in table.values():
            counted.push()

    def push(self) -> None:
        """The counts since the last push into prometheus_client; the connections as they are now."""
        self.in_flight.amount += self.flying
        self.flying = 0
        self.in_flight.push()
        pending = self._pending
        while pending:
            pending.pop().push()
        self._push_each(self._cache)
        self._push_each(self._deployed)
        answers = self.metrics.answers
        for deployment_id, answer in answers.items():
            watched = self._deployments.get(deployment_id)
            if watched is not None:  # (None: a deployment no request was counted for yet)
                watched.read_quota(answer)
        answers.clear()  # (the responses held no longer than a push)
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
        group, model_id, _, provider = labels
        quota = (group, provider, base, group, "", "", model_id)
        left = (setter(m.remaining_requests.labels(*quota)), setter(m.remaining_tokens.labels(*quota)))
        watched = _Watched(setter(m.deployment_state.labels(*labels)), connections, deployment.target.api_base, left)
        if len(self._deployments) >= MAX_SERIES:
            self._deployments.clear()
        self._deployments[deployment.id] = watched
        return watched
