"""Model group ─► deployment, with retries, cooldowns and fallbacks.

    the requested group, then its fallback groups in order (the request's own `fallbacks` when it
    sent them; after a context-window or content-policy refusal, the group's
    context_window_fallbacks / content_policy_fallbacks instead); in each group only the
    deployments that serve the operation (a group that serves none is skipped, the requested one
    answers 400) and are not cooling down (cooldowns.py):
        pick a deployment (weighted) ─► one try (proxy.py)
        a retryable failure before any byte reached the client ─► another try: at once on another
        deployment of the group when there is one, else after a backoff (the provider's
        retry-after when it sent one); then the next group

The request may set its retries and timeout (`num_retries`, `timeout` in the body, or LiteLLM's
`x-litellm-num-retries` / `x-litellm-max-retries` / `x-litellm-timeout` headers).

Every failure that is retried or failed over is logged as a WARNING with the request id and the
deployment id, so an operator sees a provider misbehave even when the client never notices.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from seance.gateway.config import Settings
from seance.gateway.context import RequestContext
from seance.gateway.errors import (
    CONTENT_POLICY,
    CONTEXT_WINDOW,
    BadRequest,
    GatewayError,
    RateLimited,
    Redactor,
    UpstreamError,
    UpstreamTimeout,
)
from seance.gateway.providers.base import Call, Operation, Reply
from seance.gateway.routing import mocks
from seance.gateway.routing.bus import Bus
from seance.gateway.routing.cooldowns import Cooldowns, Shared
from seance.gateway.routing.deployments import MAX_DYNAMIC, Deployment, Deployments
from seance.gateway.routing.health_checks import HealthChecks, Outcome, cools_down
from seance.gateway.routing.proxy import Proxy, Stream
from seance.gateway.routing.strategies import Strategy
from seance.gateway.shared_state import find_redis
from seance.gateway.upstream import Transport

T = TypeVar("T")
V = TypeVar("V")
MAX_KEPT = 4096  # per-name records kept (wildcards make names without end)
BACKOFF_BASE = 0.5  # seconds before the first retry of the same deployment, doubling each time
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 30.0  # a provider asking for a longer wait: fail over rather than hold the client
log = logging.getLogger("seance.gateway")

REFUSAL_FALLBACKS = {CONTEXT_WINDOW: "context_window_fallbacks", CONTENT_POLICY: "content_policy_fallbacks"}

# What a front asks for, per deployment: the call to make (its operation may differ from the one
# requested: /v1/messages is Anthropic's own operation on Anthropic, translated chat elsewhere).
BuildCall = Callable[[Deployment], Call]


class Recent(dict[str, V]):
    """A dict that holds at most `limit` keys besides the `kept` ones, forgetting the oldest
    first: wildcard routing makes one deployment per model name a client sends, so anything kept
    per deployment must be bounded (487k names took 43 -> 140 MB before). Costs one lookup more
    than a dict per insert; evicts only when full."""

    def __init__(self, kept: frozenset[str] = frozenset(), limit: int = MAX_DYNAMIC) -> None:
        super().__init__()
        self.kept, self.limit = kept, len(kept) + limit

    def __setitem__(self, key: str, value: V) -> None:
        if len(self) >= self.limit and key not in self:
            oldest = next((k for k in self if k not in self.kept), None)
            if oldest is not None:
                del self[oldest]
        super().__setitem__(key, value)


class Health:
    """The last outcome per deployment, from real traffic: /health reads it, never probes. The
    configured deployments (those /health lists) are always kept; wildcard ones only the latest."""

    def __init__(self, kept: frozenset[str] = frozenset()) -> None:
        self.last_error: Recent[tuple[float, str]] = Recent(kept)
        self.last_success: Recent[float] = Recent(kept)


@dataclass(frozen=True, slots=True)
class Options:
    """What one request asks of the router, over the config."""

    retries: int
    timeout: float | None  # None: each deployment's own
    fallbacks: Sequence[str]


class Router:
    def __init__(
        self,
        settings: Settings,
        deployments: Deployments,
        transport: Transport,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.num_retries = settings.resolved.num_retries  # LiteLLM's layering: seance.litellm_config.resolve
        router = settings.file.router_settings
        self.deployments = deployments
        self.proxy = Proxy(transport, Redactor(deployments.secrets()))
        self.health = Health(frozenset(d.id for d in deployments.all()))
        self.cooldowns = Cooldowns(router.allowed_fails, router.cooldown_time, clock)
        # told when a deployment starts cooling down, with the upstream status (the metrics' counter)
        self.on_cooldown: Callable[[Deployment, int | None], None] | None = None
        self.sleep = sleep
        self._defaults: dict[str, Options] = {}  # per model name: what the config alone asks for
        self.random = random.Random()
        general = settings.file.general_settings
        self.checks: HealthChecks | None = None  # general_settings.background_health_checks
        if general.background_health_checks:
            self.checks = HealthChecks(deployments.all(), self.proxy, self._probed, general.health_check_interval)
        # cooldowns and health-check rounds shared through Redis, when there is one (bus.py)
        self.bus: Bus | None = None
        self.shared: Shared | None = None
        redis = find_redis(settings)
        cooling = [d.id for group in deployments.groups.values() if len(group) > 1 for d in group]
        if redis is not None and ((cooling and self.cooldowns.cooldown_time > 0) or self.checks is not None):
            self.bus = Bus.connect(redis)
            if cooling and self.cooldowns.cooldown_time > 0:
                self.shared = Shared(self.cooldowns, self.bus, cooling)
            if self.checks is not None:
                self.checks.share(self.bus, self._heard)
        # LiteLLM's retry_policy (retries per error class), and per group model_group_retry_policy
        self.retry_policy = router.retry_policy.counts() if router.retry_policy else None
        self.group_retry_policy = {name: p.counts() for name, p in router.model_group_retry_policy.items()}
        # None for simple-shuffle without pre-call checks: that path keeps no state (strategies.py)
        self.strategy: Strategy | None = None
        if settings.resolved.routing_strategy != "simple-shuffle" or router.enable_pre_call_checks:
            self.strategy = Strategy(
                settings.resolved.routing_strategy, router.routing_strategy_args, router.enable_pre_call_checks,
                clock, self.random,
            )  # fmt: skip
            if redis is not None and router.enable_pre_call_checks:
                # deployments' rpm/tpm, one count for every worker and replica (connects on first use)
                from seance.gateway.ratelimits.shared import SharedStore

                self.strategy.shared = SharedStore(redis, subject="deployment rpm/tpm limits")

    @property
    def counts_tokens(self) -> bool:
        """Whether the strategy reads the tokens each deployment used (tpm as a limit, or usage-based
        routing): then every stream's usage is asked for, as when a hook needs it."""
        strategy = self.strategy
        return strategy is not None and (strategy.pre_call_checks or strategy.name == "usage-based-routing-v2")

    async def start(self) -> None:
        if self.bus is not None:
            await self.bus.start()
        if self.checks is not None:
            self.checks.start()

    async def stop(self) -> None:
        if self.checks is not None:
            await self.checks.stop()
        if self.bus is not None:
            await self.bus.stop()
        if self.strategy is not None and self.strategy.shared is not None:
            await self.strategy.shared.close()  # its leases of deployments' counts (ratelimits/leases.py)

    # (plain functions returning _route's coroutine: awaiting them awaits it, without a layer more)

    def complete(self, ctx: RequestContext, op: Operation, build: BuildCall) -> Awaitable[Reply]:
        return self._route(ctx, op, build, self.proxy.complete, mocks.Mock.reply)

    def stream(self, ctx: RequestContext, op: Operation, build: BuildCall) -> Awaitable[Stream]:
        """Opens the upstream stream (retrying as needed) and returns it before any byte is sent."""
        return self._route(ctx, op, build, self.proxy.open_stream, mocks.Mock.stream)

    def options(self, ctx: RequestContext) -> Options:
        assert ctx.model is not None
        fields, headers = ctx.gateway_fields, ctx.header_options
        if not fields and not headers:  # the common case: the config decides
            found = self._defaults.get(ctx.model)
            if found is None:
                found = Options(self.num_retries, None, self.deployments.fallbacks_for(ctx.model))
                if len(self._defaults) < MAX_KEPT:
                    self._defaults[ctx.model] = found
            return found
        retries = _count(fields.get("num_retries", fields.get("max_retries")), "num_retries")
        if retries is None:
            header = headers.get("x-litellm-num-retries") or headers.get("x-litellm-max-retries")
            retries = _count(header, "x-litellm-num-retries")
        timeout = _seconds(fields.get("timeout", fields.get("request_timeout")), "timeout")
        if timeout is None:
            timeout = _seconds(headers.get("x-litellm-timeout"), "x-litellm-timeout")
        # LiteLLM's stream_timeout: a streamed request's, over its timeout (checked on any request)
        stream_timeout = _seconds(fields.get("stream_timeout"), "stream_timeout")
        if stream_timeout is None:
            stream_timeout = _seconds(headers.get("x-litellm-stream-timeout"), "x-litellm-stream-timeout")
        if stream_timeout is not None and ctx.stream:
            timeout = stream_timeout
        fallbacks: Sequence[str] = self.deployments.fallbacks_for(ctx.model)
        if "fallbacks" in fields:
            fallbacks = _fallbacks(fields["fallbacks"])
            for name in fallbacks:
                self.deployments.lookup(name)  # an unknown name is the client's 404 now, not later
        if fields.get("disable_fallbacks") is True:
            fallbacks = ()
        return Options(self.num_retries if retries is None else retries, timeout, fallbacks)

    def group(self, model: str, op: Operation) -> Sequence[Deployment]:
        """The deployments of `model` that serve `op`; a 400 when there are none."""
        group = self.deployments.lookup(model)
        if len(group) == 1 and group[0].serves(op):  # the common case, without a list
            return group
        serving = [d for d in group if d.serves(op)]
        if not serving:
            providers = ", ".join(sorted({d.target.provider for d in group}))
            what = _DESCRIPTIONS[op]
            raise BadRequest(f"{what} is not offered by {providers}, the provider of '{model}'", param="model")
        return serving if len(serving) < len(group) else group

    async def _route(
        self,
        ctx: RequestContext,
        op: Operation,
        build: BuildCall,
        send: Callable[[RequestContext, Call, Deployment, float | None], Awaitable[T]],
        mocked: Callable[[mocks.Mock, Call], T],
    ) -> T:
        """The groups in turn (the model's, then its fallbacks), each deployment as the strategy
        picks it, retried as configured. One coroutine from here to the proxy: each layer between
        a request and its upstream answer costs on every resume (bench/instructions.py)."""
        assert ctx.model is not None
        options = self.options(ctx)
        mock = mocks.plan(ctx.gateway_fields) if ctx.gateway_fields else None
        groups = [ctx.model, *options.fallbacks]
        error: GatewayError | None = None
        position = -1
        while position + 1 < len(groups):
            position += 1
            name = groups[position]
            if position == 0:
                group = self.group(name, op)
            else:
                group = [d for d in self.deployments.lookup(name) if d.serves(op)]
                if not group:
                    continue  # refused at start for explicit fallbacks; a wildcard may land here
                ctx.fallbacks += 1
                log.warning("request %s: falling back from '%s' to '%s'", ctx.id, groups[position - 1], name)
            shared = len(group) > 1  # a group's only deployment never cools down
            if shared:
                available = [d for d in group if not self.cooldowns.cooling(d.id)]
                if not available:
                    error = self._all_cooling(name, group)
                    continue
                group = available
            ready = None  # the call the pre-call checks built for group[0] to measure the request
            if self.strategy is not None and self.strategy.pre_call_checks:
                try:
                    group, ready = self.strategy.admit(name, group, build)
                except GatewayError as exc:
                    error = exc
                    if exc.kind is not None and not self._reroute(groups, position, exc.kind):
                        raise
                    continue
            failed: set[str] = set()
            policy = (
                self.group_retry_policy.get(name, self.retry_policy)
                if self.retry_policy or self.group_retry_policy
                else None
            )
            for attempt in range(1 + (max(options.retries, *policy.values()) if policy else options.retries)):
                if len(group) == 1:  # the usual group: no choice to make
                    deployment = group[0]
                elif self.strategy is None:
                    deployment = _pick(group, failed, self.random)
                else:
                    deployment = self.strategy.pick(group, failed)
                strategy = self.strategy
                settled = False  # True: the limits hook adds this try's tokens to the shared count, not the strategy
                if deployment.limited and strategy is not None and (counted := strategy.shared) is not None:
                    if ctx.counted_deployment is deployment and not ctx.counted_sent:
                        # the limits hook counted the request there already, with the caller's limits
                        ctx.counted_sent = settled = True
                    else:
                        # the count every worker and replica shares (strategies.py), checked here: each
                        # coroutine between this one and the store's reply costs on its resume
                        verdict = await counted.acquire(strategy.shared_entries(deployment), 0)
                        if verdict.admitted:
                            if strategy.scores_usage:  # every worker's usage, not this one's alone
                                strategy.used_elsewhere(deployment, verdict)
                        else:
                            picked_from = group
                            try:  # another of the group
                                deployment, group = await strategy.instead(name, group, failed, deployment, verdict)
                            except GatewayError as exc:
                                error = exc
                                break  # used up everywhere: the group's fallbacks, if it has any
                            if group is not picked_from:
                                ready = None  # built for the group's first, which may be the one skipped
                ctx.deployment = deployment
                try:
                    own = 0  # the deployment's own retries (litellm_params.max_retries), before the router's
                    while True:
                        try:
                            if ready is not None and deployment is group[0]:
                                call, ready = ready, None  # built by admit, not sent yet
                            else:
                                call = build(deployment)
                            if mock is not None and (reply := _mock(mock, mocked, call, position == 0)) is not None:
                                result = reply
                            elif self.strategy is None or not (self.strategy.learns or deployment.limited):
                                result = await send(ctx, call, deployment, options.timeout)
                            else:  # counted in flight until its answer (or its stream's last chunk) is in
                                strategy = self.strategy
                                began = strategy.started(deployment)
                                try:  # in this coroutine: a layer more would cost on every resume
                                    result = await send(ctx, call, deployment, options.timeout)
                                except BaseException:
                                    strategy.finished(deployment, began, None, ok=False)
                                    raise
                                strategy.answered(deployment, began, result, settled)
                            break
                        except GatewayError as exc:
                            wait = self._own_retry(ctx, deployment, exc, own)
                            if wait is None:
                                raise
                            own += 1
                            settled = False  # (the hook counts the first try's tokens: none)
                            if wait:
                                await self.sleep(wait)
                except GatewayError as exc:
                    error = exc
                    if self._failed(ctx, deployment, exc, shared and exc.kind is None) and self.shared is not None:
                        await self.shared.announce(deployment.id)  # before the retry: see cooldowns.py
                    # retry_policy: its count for this class of failure; naming a class Seance would
                    # not retry (a 400, a refusal) asks for it to be retried all the same
                    named = policy.get(retry_class(exc)) if policy is not None else None
                    retries = options.retries if named is None else named
                    if exc.kind is not None:  # a refusal another deployment of the group would repeat
                        if self._reroute(groups, position, exc.kind):
                            break
                        if not named:
                            raise
                    elif not exc.retryable and not named:
                        raise
                    failed.add(deployment.id)
                    wait = self._wait(exc, attempt, group, failed)
                    if attempt >= retries or wait is None:
                        log.warning("request %s: giving up on '%s' after %d tries", ctx.id, name, attempt + 1)
                        break
                    ctx.retries += 1
                    if wait:
                        await self.sleep(wait)
                    continue
                if deployment.id in self.health.last_error:  # only a success after an error matters
                    self.health.last_success[deployment.id] = time.time()
                return result
        assert error is not None
        raise error

    def _own_retry(self, ctx: RequestContext, deployment: Deployment, error: GatewayError, done: int) -> float | None:
        """litellm_params.max_retries: the same deployment tried again (as a provider's SDK retries)
        after a failure safe to retry, with its backoff; None once they are used (or not safe): the
        router's num_retries, other deployments and fallbacks take it from there."""
        if not deployment.max_retries or done >= deployment.max_retries or not error.retryable or error.kind:
            return None
        wait = self._wait(error, done, (deployment,), {deployment.id})
        if wait is None:
            return None
        self._failed(ctx, deployment, error, False)  # recorded; the cooldown counts the last failure only
        ctx.retries += 1
        return wait

    def _reroute(self, groups: list[str], position: int, kind: str) -> bool:
        """After a refusal of `kind` by groups[position]: its context_window_fallbacks /
        content_policy_fallbacks replace the groups still to try (LiteLLM's way); False when it has
        none, and the refusal is the answer."""
        found = self.deployments.fallbacks_for(groups[position], REFUSAL_FALLBACKS[kind])
        special = [group for group in found if group not in groups[: position + 1]]
        groups[position + 1 :] = special
        return bool(special)

    def _failed(self, ctx: RequestContext, deployment: Deployment, error: GatewayError, shared: bool) -> bool:
        """Bookkeeping of a failed try; True when the deployment now cools down."""
        self.health.last_error[deployment.id] = (time.time(), error.message)
        status = error.upstream_status if isinstance(error, UpstreamError) else error.status
        ctx.failed_attempts += ((deployment, status, ctx.upstream_sent, time.perf_counter(), type(error).__name__),)
        cooling = shared and self.cooldowns.failed(deployment.id, status)
        if cooling and self.on_cooldown is not None:
            self.on_cooldown(deployment, status)
        log.warning(
            "request %s: deployment %s (%s) failed with %s: %s%s",
            ctx.id, deployment.id, deployment.model_name, _status(error), error.message,
            f"; cooling down for {self.cooldowns.cooldown_time:g} s" if cooling else "",
        )  # fmt: skip
        return cooling

    async def _probed(self, deployment: Deployment, error: GatewayError | None) -> None:
        """A background health check's outcome: /health's record, and a cooldown when the
        deployment failed as a request would (and its group has another one)."""
        if error is None:
            self.health.last_success[deployment.id] = time.time()
            return
        self.health.last_error[deployment.id] = (time.time(), error.message)
        shared = len(self.deployments.groups.get(deployment.model_name, ())) > 1
        cooling = shared and cools_down(error) and self.cooldowns.cooldown_time > 0
        if cooling:
            self.cooldowns.cool(deployment.id, self.cooldowns.cooldown_time)
            if self.shared is not None:
                await self.shared.announce(deployment.id)
        log.warning(
            "health check: deployment %s (%s) failed with %s: %s%s",
            deployment.id, deployment.model_name, _status(error), error.message,
            f"; cooling down for {self.cooldowns.cooldown_time:g} s" if cooling else "",
        )  # fmt: skip

    def _heard(self, outcome: Outcome) -> None:
        """A probe's outcome from the worker that ran the round (health_checks.py), for /health."""
        deployment_id, when, error = outcome
        if error is None:
            self.health.last_success[deployment_id] = max(when, self.health.last_success.get(deployment_id, 0.0))
        elif when > self.health.last_error.get(deployment_id, (0.0, ""))[0]:
            self.health.last_error[deployment_id] = (when, error)

    def _wait(self, error: GatewayError, attempt: int, group: Sequence[Deployment], failed: set[str]) -> float | None:
        """Seconds to wait before the next try: none when another deployment of the group is left,
        else the provider's retry-after or an exponential backoff with jitter; None: do not retry."""
        if any(d.id not in failed for d in group):
            return 0.0
        after = _retry_after(error.headers)
        if after is not None:
            return after if after <= RETRY_AFTER_CAP else None
        backoff: float = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * self.random.uniform(0.5, 1.5)
        return backoff

    def _all_cooling(self, name: str, group: Sequence[Deployment]) -> GatewayError:
        seconds = self.cooldowns.seconds_left([d.id for d in group])
        wait = max(1, round(seconds + 0.5))
        return RateLimited(
            f"every deployment of '{name}' is cooling down after failures; try again in {wait} s",
            headers={"retry-after": str(wait)},
            code="no_deployments_available",
        )


def make_call(
    op: Operation,
    body: dict[str, Any],
    raw: bytes,
    stream: bool,
    deployment: Deployment,
    headers: Mapping[str, str],
    drop_params: bool | None = None,
    want_usage: bool = False,
) -> Call:
    """The call to one deployment: the deployment's default params under the client's own."""
    if deployment.params:
        body = {**deployment.params, **body}
        raw = b""
    return Call(op, body, raw, stream, deployment.target, headers, drop=drop_params, want_usage=want_usage)


def retry_class(exc: GatewayError) -> str:
    """The RetryPolicy field that counts the retries of this failure."""
    status = exc.status
    if exc.kind == CONTENT_POLICY:
        return "ContentPolicyViolationErrorRetries"
    if isinstance(exc, UpstreamTimeout) or status == 408:
        return "TimeoutErrorRetries"
    if status == 429:
        return "RateLimitErrorRetries"
    if status in (401, 403):
        return "AuthenticationErrorRetries"
    if 400 <= status < 500:
        return "BadRequestErrorRetries"
    return "InternalServerErrorRetries"


def _mock(mock: mocks.Mock, mocked: Callable[[mocks.Mock, Call], T], call: Call, first_group: bool) -> T | None:
    """A mocked try: fails as asked (raises), or answers with the mock's text; None: call for real."""
    mock.fail(first_group)
    return mocked(mock, call) if mock.text is not None else None


def _status(exc: GatewayError) -> str:
    """The provider's own status where there was one (a 503 is shown to clients as a 502)."""
    upstream = exc.upstream_status if isinstance(exc, UpstreamError) else None
    return f"HTTP {upstream}" if upstream else f"{exc.status} ({exc.code or exc.type})"


def _pick(group: Sequence[Deployment], failed: set[str], rng: random.Random) -> Deployment:
    candidates = [d for d in group if d.id not in failed] or list(group)
    return rng.choices(candidates, weights=[d.weight for d in candidates])[0]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds; an HTTP date is not worth parsing
    for a wait this short: it falls back to the backoff)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        for key, value in headers.items():
            if key.lower() == name:
                try:
                    seconds = float(value) * scale
                except ValueError:
                    continue
                if seconds >= 0:
                    return seconds
    return None


def _count(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise BadRequest(f"{name} must be a whole number from 0 to 10", param=name)
    return value


def _seconds(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise BadRequest(f"{name} must be a number of seconds", param=name) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise BadRequest(f"{name} must be a number of seconds, more than 0 and at most 3600", param=name)
    return float(value)


def _fallbacks(value: Any) -> list[str]:
    """LiteLLM's per-request fallbacks: model names, or objects with a "model"."""
    if not isinstance(value, list):
        raise BadRequest("fallbacks must be a list of model names", param="fallbacks")
    names = []
    for item in value:
        name = item.get("model") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name:
            raise BadRequest("fallbacks must be a list of model names", param="fallbacks")
        names.append(name)
    return names


_DESCRIPTIONS: dict[str, str] = {
    "chat": "chat completions",
    "completion": "text completions (/v1/completions)",
    "embedding": "embeddings",
    "messages": "Anthropic messages",
    "count_tokens": "token counting (/v1/messages/count_tokens)",
}
