"""Prometheus metrics: LiteLLM's metric names, types and label names (what its Grafana dashboards
query), plus the gateway's own (`seance_*`). prometheus_client is imported only when metrics are on.

Labels are bounded whatever clients send: a model label is a configured group name (a wildcard's
pattern, `provider/*` for routing by name, "other" for anything else), a key is the first
characters of its SHA-256 hash or its alias (never the key), and `end_user` (LiteLLM's `user`
request field, which any client may fill with anything) is left empty.

The request path counts in plain Python numbers (`Count`, `Tally`) that are pushed into
prometheus_client's values in batches: every `PUSH_INTERVAL` seconds, before every scrape this
process answers, and at shutdown. A locked increment of prometheus_client costs ~2,400 instructions,
a float addition a few dozen: a request's dozen increments were 12 % of its cost.

With `--workers N` each worker writes its values to files in PROMETHEUS_MULTIPROC_DIR and a scrape
sums them (prometheus_client's multiprocess mode); `multiprocess_dir` makes and removes that
directory when the operator did not name one. A scrape sees the other workers' counts as of their
last push, at most `PUSH_INTERVAL` old.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
import operator
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from seance.gateway import routes
from seance.gateway.budget_metrics import BudgetGauges
from seance.gateway.context import MASTER_KEY_ALIAS, Caller, RequestContext

if TYPE_CHECKING:
    from seance.gateway.config import Settings
    from seance.gateway.routing.deployments import Deployment
    from seance.gateway.store.budgets import Budgeted
    from seance.gateway.upstream import UpstreamResponse

log = logging.getLogger("seance.gateway")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PUSH_INTERVAL = 1.0  # seconds between two pushes of the request path's counts
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
HASH_PREFIX = 12  # hex characters of a key's hash in labels: enough to tell keys apart, not to look one up
MAX_SERIES = 4096  # label sets remembered per kind; past it the table is cleared (the series stay)
OTHER = "other"

# LiteLLM's latency buckets (seconds), so that its dashboards' quantiles read the same
LATENCY_BUCKETS = (
    0.005, 0.00625, 0.0125, 0.025, 0.05, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0,
    6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 15.0, 20.0, 25.0, 30.0, 60.0, 120.0, 180.0, 240.0, 300.0,
    float("inf"),
)  # fmt: skip

# who called: LiteLLM's label names, in this order in every tuple below
WHO = ("end_user", "hashed_api_key", "api_key_alias", "team", "team_alias", "user")
DEPLOYMENT = ("litellm_model_name", "model_id", "api_base", "api_provider")
# LiteLLM's per-deployment request counters and latencies name the key and team only (not the user)
KEY_AND_TEAM = ("hashed_api_key", "api_key_alias", "team", "team_alias")
NOBODY = ("", "", "", "", "", "")
# which deployment answered: LiteLLM labels most request series with it too (empty: none did)
BY_DEPLOYMENT = ("model_id", "api_provider")
NO_DEPLOYMENT = ("", "")
# The master key's requests, as LiteLLM labels them: an alias in place of the key or its hash, and
# its admin's user id (context.MASTER_KEY_ALIAS and the default litellm_proxy_admin_name)
MASTER_LABELS = ("", MASTER_KEY_ALIAS, "", "", "", "default_user_id")


def who(caller: Caller | None) -> tuple[str, ...]:
    if caller is None:
        return NOBODY
    if caller.kind == "master":
        return MASTER_LABELS
    if caller.key_hash is None and caller.team_id is None and caller.user_id is None:
        return NOBODY  # no auth configured
    key = caller.key_hash[:HASH_PREFIX] if caller.key_hash else ""
    return ("", key, caller.key_alias or "", caller.team_id or "", caller.team_alias or "", caller.user_id or "")


def route_of(path: str) -> str:
    """LiteLLM's `route` label: the path the request was sent to ("/v1/chat/completions",
    "/chat/completions"), a trailing slash dropped; only paths of the route table (any other
    path is not counted: no label a client can make up)."""
    if path in routes.TABLE:
        return path
    path = path.rstrip("/") or "/"
    return path if path in routes.TABLE else ""


class ModelLabels:
    """The model labels of a request from the config alone: never a name a client made up."""

    def __init__(self, settings: Settings) -> None:
        entries = settings.file.model_list
        self.groups = frozenset(e.model_name for e in entries if "*" not in e.model_name)
        # a wildcard deployment is known by its entry's key path; model "*" routes by provider name
        self.wildcards: dict[str, str | None] = {}
        for index, entry in enumerate(entries):
            if "*" in entry.model_name:
                by_name = entry.litellm_params.model == "*"
                self.wildcards[f"model_list[{index}]"] = None if by_name else entry.model_name
        self.by_name = settings.no_config

    def requested(self, ctx: RequestContext) -> str:
        """LiteLLM's requested_model: the group asked for."""
        model = ctx.model
        if model is not None and model in self.groups:
            return model
        deployment = ctx.deployment
        return self.of(deployment) if deployment is not None else OTHER

    def of(self, deployment: Deployment) -> str:
        """LiteLLM's model / litellm_model_name: the deployment's group."""
        if deployment.model_name in self.groups:
            return deployment.model_name
        if deployment.where in self.wildcards or self.by_name:
            name = self.wildcards.get(deployment.where)
            return name if name is not None else f"{deployment.target.provider}/*"
        return OTHER


class Metrics:
    def __init__(self, settings: Settings, multiprocess: str | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = multiprocess
        # multiprocess: values live in files, a scrape reads them all (no registry of their own);
        # one process: a registry of this gateway's, so that several apps in one test never clash
        registry = None if multiprocess else CollectorRegistry(auto_describe=True)
        self.registry = registry
        self.models = ModelLabels(settings)
        self.connections: Callable[[str], int] | None = None  # open upstream connections per origin
        self.answers: dict[str, UpstreamResponse] = {}  # a deployment's answer since the last push (proxy.py)

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return Histogram(name, doc, labels, registry=registry, buckets=LATENCY_BUCKETS)

        def gauge(name: str, doc: str, labels: tuple[str, ...], mode: Any) -> Any:
            return Gauge(name, doc, labels, registry=registry, multiprocess_mode=mode)

        # The request series' labels: LiteLLM 1.108's names (pipeline/metrics.py's _Series fills
        # them in this order)
        requested, model = ("requested_model",), ("model",)
        self.total = counter(
            "litellm_proxy_total_requests_metric", "Requests made to the proxy, by their status code",
            (*WHO, *requested, "status_code", "user_email", "route", *BY_DEPLOYMENT),
        )  # fmt: skip
        self.failed = counter(
            "litellm_proxy_failed_requests_metric", "Requests that did not get a success response",
            (*WHO, *requested, "exception_status", "exception_class", "user_email", "route", *BY_DEPLOYMENT),
        )  # fmt: skip
        by_latency = (*WHO, *requested, *model, "model_group", *BY_DEPLOYMENT)
        self.latency = histogram(
            "litellm_request_total_latency_metric", "Seconds from a request's arrival to its last byte", by_latency
        )
        self.api_latency = histogram(
            "litellm_llm_api_latency_metric", "Seconds of the provider's call (last try)", by_latency
        )
        self.ttft = histogram(
            "litellm_llm_api_time_to_first_token_metric", "Seconds to the first byte of a streamed answer", by_latency
        )
        by_usage = (*WHO, *requested, *model, "user_email", *BY_DEPLOYMENT)
        self.input_tokens = counter("litellm_input_tokens_metric", "Input (prompt) tokens", by_usage)
        self.output_tokens = counter("litellm_output_tokens_metric", "Output (completion) tokens", by_usage)
        self.total_tokens = counter("litellm_total_tokens_metric", "Input + output tokens", by_usage)
        self.spend = counter("litellm_spend_metric", "Spend on LLM requests (USD)", by_usage)
        # LiteLLM's older count of the requests that succeeded, which it still keeps (deprecated
        # there for litellm_proxy_total_requests_metric): dashboards made for it still read it
        self.requests = counter(
            "litellm_requests_metric", "Requests that succeeded (LiteLLM's older name; see the total)", by_usage
        )
        # budgets: a collector of the store's rows at each scrape, once there is a store (watch_budgets)
        self.budget_gauges: BudgetGauges | None = None
        self.deployment_state = gauge(
            "litellm_deployment_state", "State of a deployment: 0 healthy, 1 partial outage, 2 complete outage",
            DEPLOYMENT, "mostrecent",
        )  # fmt: skip
        self.cooled_down = counter(
            "litellm_deployment_cooled_down", "Times a deployment was cooled down", (*DEPLOYMENT, "exception_status")
        )
        # every call to a deployment (retries each count), by how it ended: LiteLLM's dashboards'
        # success rate per deployment
        by_deployment = ("model_group", *requested, *DEPLOYMENT, *KEY_AND_TEAM)
        self.deployment_total = counter(
            "litellm_deployment_total_requests", "Calls to a deployment, whatever their outcome", by_deployment
        )
        self.deployment_success = counter(
            "litellm_deployment_success_responses", "Calls to a deployment that answered with success", by_deployment
        )
        self.deployment_failure = counter(
            "litellm_deployment_failure_responses", "Calls to a deployment that failed (each try)",
            (*by_deployment, "exception_status", "exception_class"),
        )  # fmt: skip
        self.per_token = histogram(
            "litellm_deployment_latency_per_output_token", "Seconds of the provider's call per output token",
            ("model_group", *DEPLOYMENT, *KEY_AND_TEAM),
        )  # fmt: skip
        self.overhead = histogram(
            "litellm_overhead_latency_metric", "Seconds the gateway spent before calling the provider",
            ("model_group", "api_provider", "api_base", "litellm_model_name", "hashed_api_key", "api_key_alias",
             "model_id"),
        )  # fmt: skip
        # requests answered (or not) by a fallback group (router_settings / the request's fallbacks)
        by_fallback = ("requested_model", "fallback_model", *KEY_AND_TEAM, "exception_status", "exception_class",
                       "model_id")  # fmt: skip
        self.fallback_success = counter(
            "litellm_deployment_successful_fallbacks", "Requests a fallback model group answered", by_fallback
        )
        self.fallback_failure = counter(
            "litellm_deployment_failed_fallbacks", "Requests that failed after falling back", by_fallback
        )
        # what the provider's last answer said of its own rate limits (x-ratelimit-remaining-*, or
        # Anthropic's anthropic-ratelimit-*-remaining): its quota, not a caller's, so the key labels
        # stay empty (LiteLLM fills them with the caller of that answer)
        by_provider_quota = ("model_group", "api_provider", "api_base", "litellm_model_name", "hashed_api_key",
                             "api_key_alias", "model_id")  # fmt: skip
        self.remaining_requests = gauge(
            "litellm_remaining_requests_metric", "Requests the provider's rate limit has left (its last answer)",
            by_provider_quota, "mostrecent",
        )  # fmt: skip
        self.remaining_tokens = gauge(
            "litellm_remaining_tokens_metric", "Tokens the provider's rate limit has left (its last answer)",
            by_provider_quota, "mostrecent",
        )  # fmt: skip
        # what a virtual key has left of its model_rpm_limit / model_tpm_limit for a model group
        # after its last request there (the limits hook's, pushed with the rest): LiteLLM's, only
        # for keys with such a limit
        by_key_model = ("hashed_api_key", "api_key_alias", "model", "model_id")
        self.key_model_requests_left = gauge(
            "litellm_remaining_api_key_requests_for_model",
            "Requests a virtual key has left this minute of its model_rpm_limit for the model group",
            by_key_model, "mostrecent",
        )  # fmt: skip
        self.key_model_tokens_left = gauge(
            "litellm_remaining_api_key_tokens_for_model",
            "Tokens a virtual key has left this minute of its model_tpm_limit for the model group",
            by_key_model, "mostrecent",
        )  # fmt: skip
        # LiteLLM's response-cache counters (the gateway's own seance_cache_requests below too)
        by_cache = ("model", "hashed_api_key", "api_key_alias", "team", "team_alias", "end_user", "user", "model_id",
                    "api_provider")  # fmt: skip
        self.cache_hits = counter("litellm_cache_hits_metric", "Requests answered from the response cache", by_cache)
        self.cache_misses = counter("litellm_cache_misses_metric", "Cache lookups that found nothing", by_cache)
        self.cached_tokens = counter(
            "litellm_cached_tokens_metric", "Tokens of the answers served from the response cache", by_cache
        )
        self.in_flight = gauge("seance_requests_in_flight", "Requests being served", (), "livesum")
        self.upstream_connections = gauge(
            "seance_upstream_connections", "Open connections to an upstream origin", ("origin",), "livesum"
        )
        self.cache = counter("seance_cache_requests", "Response cache lookups", ("result", *requested))
        self.rate_limited = counter(
            "seance_rate_limited_requests", "Requests refused by the gateway's rate limits", (*WHO, *requested)
        )
        self._deployments: dict[str, tuple[str, ...]] = {}
        self.pushers: list[Callable[[], None]] = []  # what holds counts not yet pushed (the hook)
        self._pushing: asyncio.Task[None] | None = None

    # -- the batches of the request path --

    def push(self) -> None:
        """Everything counted since the last push, into prometheus_client's values (in this
        process; in multiprocess mode, into this worker's files)."""
        for push in self.pushers:
            push()

    def start(self) -> None:
        """The periodic push (in the event loop that serves the requests)."""
        if self._pushing is None:
            self._pushing = asyncio.get_running_loop().create_task(self._push_every(PUSH_INTERVAL))

    async def stop(self) -> None:
        """The last push: at shutdown, once the requests in flight are done."""
        task, self._pushing = self._pushing, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.push()

    async def _push_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                self.push()
            except Exception:  # a count not pushed stays counted: the next push tries again
                log.exception("metrics: pushing the counts into prometheus_client failed")

    # -- what the router and the keys feature call --

    def deployment_labels(self, deployment: Deployment) -> tuple[str, ...]:
        labels = self._deployments.get(deployment.id)
        if labels is None:
            from seance.gateway.upstream import public_url

            group = self.models.of(deployment)
            configured = group == deployment.model_name  # a wildcard's deployments share the pattern's
            model_id = deployment.id if configured else group
            base = public_url(deployment.target.api_base) if configured else ""
            labels = (group, model_id, base, deployment.target.provider)
            _remember(self._deployments, deployment.id, labels)
        return labels

    def answered_by(self, deployment: Deployment | None) -> tuple[str, ...]:
        """LiteLLM's (model_id, api_provider) of the deployment that answered; empty when none did."""
        return NO_DEPLOYMENT if deployment is None else self.deployment_labels(deployment)[1::2]

    def cooled_down_now(self, deployment: Deployment, status: int | None) -> None:
        """The router put a deployment in cooldown."""
        labels = self.deployment_labels(deployment)
        self.cooled_down.labels(*labels, str(status or "")).inc()
        self.deployment_state.labels(*labels).set(2)

    def watch_budgets(self, read: Callable[[int], Awaitable[list[Budgeted]]]) -> None:
        """Show the budgets of every key, team and user that has one, as `read` (the store's) has them.
        Again (a reload): the same collector reads through the new `read`."""
        if self.budget_gauges is not None:
            self.budget_gauges.read = read
            return
        self.budget_gauges = BudgetGauges(read, MAX_SERIES, HASH_PREFIX)
        if self.registry is not None:
            self.registry.register(self.budget_gauges)  # type: ignore[arg-type]

    async def refresh_budgets(self) -> None:
        """The budget gauges as the store has them now (before a scrape)."""
        if self.budget_gauges is not None:
            await self.budget_gauges.refresh()

    # -- /metrics --

    def exposition(self) -> bytes:
        """The text format of every metric (summed over the workers in multiprocess mode)."""
        from prometheus_client import CollectorRegistry, generate_latest

        if self.multiprocess is None:
            assert self.registry is not None
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.multiprocess)  # type: ignore[no-untyped-call]
        if self.budget_gauges is not None:  # read from the shared database by this worker, not from files
            registry.register(self.budget_gauges)  # type: ignore[arg-type]
        return generate_latest(registry)


# -- the per-request fast path --
# prometheus_client checks, on every call, what cannot vary here (that a counter's amount is not
# negative, that a series has its labels), takes a lock per increment and histograms scan their 36
# buckets. The request path adds to plain numbers instead (`Count`, `Tally`); a push hands them to
# the value objects underneath (the same ones, in one process or in multiprocess files). If a
# release of prometheus_client moves them, the public methods are used.


def adder(series: Any) -> Callable[[float], None]:
    """The `inc` of a counter's or gauge's series."""
    value = getattr(series, "_value", None)
    inc = getattr(value, "inc", None)
    return inc if callable(inc) else series.inc  # type: ignore[no-any-return]


def setter(series: Any) -> Callable[[float], None]:
    """The `set` of a gauge's series."""
    value = getattr(series, "_value", None)
    set_ = getattr(value, "set", None)
    return set_ if callable(set_) else series.set  # type: ignore[no-any-return]


class Count:
    """What was added to a counter's (or a gauge's) series since the last push: `amount += n`. With
    more series, the push adds it to each (one addition a request for counters that always move
    together: a deployment's calls and its successes).

    The amount starts as the int 0, not 0.0: most counts add ints (requests, tokens), and int + int
    is the interpreter's specialized addition where float + int takes the generic path (~200
    instructions each, five or six a request). prometheus_client adds it to its float the same."""

    __slots__ = ("_add", "_more", "amount")

    def __init__(self, series: Any, *more: Any) -> None:
        self.amount: float = 0
        self._add = adder(series)
        self._more = tuple(adder(other) for other in more)

    def push(self) -> None:
        if self.amount:
            self._add(self.amount)
            for add in self._more:
                add(self.amount)
            self.amount = 0


# A push of at least this many amounts of one series sorts them (Tally.push). callgrind, one push
# of N unordered amounts, instructions: N=24 107k binned one by one, 114k sorted; N=40 161k / 154k;
# N=500 1.67M / 1.22M (~900 less an amount: a busy gateway observes two or three a request).
SORT_FROM = 32


class Tally:
    """What a histogram's series observed since the last push: the amounts themselves, binned into
    its buckets at the push. `observe` is the list's own append (C, no Python frame, no bisect on
    the request path: ~2,000 instructions a request less for the two latencies than a method that
    binned at once); the push bins them, and adds them up in the order observed, so the sum is the
    same float."""

    __slots__ = ("_buckets", "_sum", "amounts", "observe")

    def __init__(self, buckets: list[Callable[[float], None]], total: Callable[[float], None]) -> None:
        self.amounts: list[float] = []
        self.observe: Callable[[float], None] = self.amounts.append
        self._buckets, self._sum = buckets, total

    def push(self) -> None:
        amounts = self.amounts
        if not amounts:
            return
        if len(amounts) < SORT_FROM:
            counts = [0] * len(LATENCY_BUCKETS)
            total = 0.0
            bucket_of = bisect.bisect_left
            for amount in amounts:
                counts[bucket_of(LATENCY_BUCKETS, amount)] += 1  # the first bucket that holds it
                total += amount
            del amounts[:]  # emptied in place: `observe` is bound to this list
            for inc, count in zip(self._buckets, counts, strict=True):
                if count:
                    inc(count)  # buckets hold their own count; a scrape sums them
        else:
            # many (a busy second): summed in their order in C, sorted in C, then each bucket's
            # share found by bisecting the sorted amounts (36 searches) instead of one Python
            # iteration and search per amount
            total = functools.reduce(operator.add, amounts, 0.0)
            ordered = sorted(amounts)
            del amounts[:]
            below = 0  # amounts in the buckets before this one
            bucket_end = bisect.bisect_right
            for inc, bound in zip(self._buckets, LATENCY_BUCKETS, strict=True):
                upto = bucket_end(ordered, bound)  # amounts <= bound: prometheus's `le`
                if upto > below:
                    inc(upto - below)
                    below = upto
        self._sum(total)


class Observed:
    """A histogram's series whose insides are not the known ones: observed at once, publicly."""

    __slots__ = ("observe",)

    def __init__(self, series: Any) -> None:
        self.observe: Callable[[float], None] = series.observe

    def push(self) -> None:
        pass


def tally(series: Any) -> Tally | Observed:
    """The batch of a histogram's series."""
    bounds, buckets, total = (getattr(series, name, None) for name in ("_upper_bounds", "_buckets", "_sum"))
    if not (isinstance(buckets, list) and isinstance(bounds, (list, tuple)) and tuple(bounds) == LATENCY_BUCKETS):
        return Observed(series)
    if total is None or not all(callable(getattr(bucket, "inc", None)) for bucket in buckets):
        return Observed(series)
    return Tally([bucket.inc for bucket in buckets], total.inc)


def _remember(table: MutableMapping[str, Any], key: str, value: Any) -> None:
    if len(table) >= MAX_SERIES:
        table.clear()
    table[key] = value


@contextlib.contextmanager
def multiprocess_dir(environ: MutableMapping[str, str]) -> Iterator[str]:
    """The directory the workers' metric files go to: PROMETHEUS_MULTIPROC_DIR when the operator set
    it (emptied first: files of an earlier run would be summed in), else a private temporary one,
    removed on exit. prometheus_client reads the variable when it is imported, so this must come
    before any metric is made; the workers inherit it."""
    given = environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(given, name))
        yield given
        return
    path = tempfile.mkdtemp(prefix="seance-metrics-")
    environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def worker_exited(path: str) -> Callable[[int], None]:
    """What the server calls when a worker process ends: its live gauges (in-flight requests,
    connections) stop counting; its counters stay, as a scrape must never see them go down."""

    def mark(pid: int) -> None:
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid, path)  # type: ignore[no-untyped-call]

    return mark
