"""Rate limits: requests per minute, tokens per minute and requests in flight, for every Limits the
caller carries (its key's, team's, user's: set by the auth hook), its end user's and, per model group,
their model_rpm_limit / model_tpm_limit for the requested model.

    before   check every scope at once and count the request (one store call: one Redis round
             trip, or none when the worker holds a lease of them: ratelimits/leases.py); at a
             limit: 429 with retry-after and OpenAI's x-ratelimit-* headers
    after    settle the tokens to the real usage (streams too) and end the in-flight count

Tokens are reserved before the answer from an estimate, so concurrent requests see each other's
share: a scope is admitted while its counted tokens are under its tpm (LiteLLM's check), and the
estimate is the request's text length / 4 plus its max_tokens when it sets one. A burst therefore
overruns tpm by at most one request's worth per worker.

With Redis and the router's pre-call checks, a deployment's rpm/tpm (config.yaml) are counted in
Redis too, one count for every worker and replica (routing/strategies.py). Where the requested model
group is one such deployment (the usual: no choice for the router to make), its entry is counted
here, last, in the same script call as the caller's: one round trip a request, not two (`share`).
The router then sends the request there without counting it again (ctx.counted_deployment); a
request that never reaches it (a cache hit, a later refusal) gives its count back after the answer;
one the cache already holds in this process (ctx.answer_known: a copy of a Redis entry) is counted
with the caller's limits alone, the deployment left out.
The deployment at its limit while the caller is not: the caller's limits are counted alone (a
second round trip, on refusals only), and the router's pre-call checks skip the deployment (its
group's fallbacks, or the 429 they would give).

general_settings.global_max_parallel_requests is a hook of its own (GlobalCap, below): the LLM
requests in flight at once in this worker process, whoever sends them.

The hook is in the list only when limits can exist (hooks.Features.limits: a keys store is
configured); a request whose caller has no limits (the master key) and whose end user has none
returns at the first checks. An end user's limits (their budget row's, read by the auth hook)
apply to whoever names them, as their budget does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from seance.gateway.context import Caller, Headers, Limits, RequestContext
from seance.gateway.errors import RateLimited
from seance.gateway.metrics import HASH_PREFIX
from seance.gateway.pipeline import Answer, Hook
from seance.gateway.ratelimits import GIVE_BACK, NO_TOKENS, SETTLE, Counts, Entry, Store, Verdict
from seance.gateway.ratelimits.memory import MemoryStore

if TYPE_CHECKING:
    from seance.gateway.metrics import Metrics
    from seance.gateway.routing.deployments import Deployment
    from seance.gateway.routing.router import Router
    from seance.gateway.routing.strategies import Strategy

# parts of a message that are not text the model reads as tokens of that size (data URLs, files)
NOT_TEXT = frozenset({"image_url", "input_audio", "file", "source", "image", "audio"})
ALL_TEXT = ("messages", "input", "prompt", "system", "suffix")
# where each endpoint's API puts the text a model reads (the others: wherever it may be)
TEXT_FIELDS = {"chat": ("messages",), "messages": ("system", "messages"), "completion": ("prompt", "suffix"),
               "embedding": ("input",)}  # fmt: skip
NO_LIMIT_BODY = frozenset({"count_tokens"})  # routes that call no model
CLIENT_GONE = 499
MAX_REMEMBERED = 4096  # plans kept; past it the table starts again


class Plan:
    """What the requests of one caller to one model group are checked against, worked out once
    (cached keys keep their Limits objects, so the same callers ask again and again): the entries,
    whether any counts tokens, and each limited entry's limit and x-ratelimit-limit-* header. With
    `deployment`, the group's one deployment counted here (`share`), its entry last; the headers
    are the caller's limits only."""

    __slots__ = (
        "caller_entries", "deployment", "entries", "key_model", "limits", "one_each", "requests_headers",
        "tokens", "tokens_headers",
    )  # fmt: skip

    def __init__(
        self, limits: tuple[Limits, ...], model: str | None, deployment: tuple[Deployment, Entry] | None = None
    ) -> None:
        self.limits = limits
        self.caller_entries = self.entries = entries_for(limits, model)
        self.deployment = None
        if deployment is not None:
            self.deployment, entry = deployment
            self.entries = (*self.caller_entries, entry)
        self.tokens = any(tpm is not None for _, _, tpm, _ in self.entries)
        # (index of the entry, its limit, its limit header), for the entries with that limit
        self.requests_headers = tuple(
            (i, rpm, (b"x-ratelimit-limit-requests", b"%d" % rpm))
            for i, (_, rpm, _, _) in enumerate(self.caller_entries)
            if rpm is not None
        )
        self.tokens_headers = tuple(
            (i, tpm, (b"x-ratelimit-limit-tokens", b"%d" % tpm))
            for i, (_, _, tpm, _) in enumerate(self.caller_entries)
            if tpm is not None
        )
        # exactly one entry with an rpm and one with a tpm: both headers' (index, limit, header), as one
        self.one_each = (
            (*self.requests_headers[0], *self.tokens_headers[0])
            if len(self.requests_headers) == 1 and len(self.tokens_headers) == 1
            else None
        )
        # the key's own per-model limits (its model_rpm_limit / model_tpm_limit for this group), as
        # (entry index, rpm, tpm): what the metrics show left of them (LiteLLM's, for keys only)
        self.key_model = tuple(
            (i, rpm, tpm)
            for i, (name, rpm, tpm, _) in enumerate(self.caller_entries)
            if name.startswith("key:") and "/model:" in name
        )


class RateLimits(Hook):
    name = "limits"
    needs_usage = True

    def __init__(self, store: Store, metrics: Metrics | None = None) -> None:
        self.store = store
        self.local = store if type(store) is MemoryStore else None
        self._plans: dict[tuple[int, str | None], Plan] = {}
        # (id of a caller's limits, id of an end user's) -> both, and the tuple of them (_with_end_user)
        self._joined: dict[tuple[int, int], tuple[tuple[Limits, ...], Limits, tuple[Limits, ...]]] = {}
        self.before_now = self._before_local if self.local is not None else None
        # the model groups whose one deployment is counted here (`share`), and the router's strategy
        self.counted: dict[str, tuple[Deployment, Entry]] = {}
        self.strategy: Strategy | None = None
        # with metrics: what keys have left of their per-model limits, by (hash prefix, alias, model
        # group), pushed into the gauges with the metrics' batch; `gauging` once a plan has any
        self.metrics = metrics
        self.gauging = False
        # (key hash, alias, model) -> the deployment that answered, what is left: the gauges' batch
        self._left: dict[tuple[str, str, str], tuple[str | None, int | None, int | None]] = {}
        self._left_ids: dict[tuple[str, str, str], str] = {}  # the deployment each was last answered by
        if metrics is not None:
            metrics.pushers.append(self._push_left)

    def share(self, router: Router) -> None:
        """The router requests go to from now on (a reload makes another). With the same Redis
        as this store and pre-call checks, it counts its limited deployments there: those that
        are a model group alone are counted here instead, with the caller's limits in one script
        call, and the router is given this store (one connection, one fallback, one WARNING)."""
        from seance.gateway.ratelimits.shared import SharedStore

        self._plans.clear()
        self.counted, self.strategy = {}, None
        strategy = router.strategy
        if strategy is None or strategy.shared is None:
            return
        if not isinstance(self.store, SharedStore) or self.store.url != strategy.shared.url:
            return
        strategy.shared = self.store
        self.strategy = strategy
        deployments = router.deployments
        for name, group in deployments.groups.items():
            if len(group) == 1 and group[0].limited:
                self.counted[name] = (group[0], strategy.shared_entries(group[0])[0])
        for alias, target in deployments.aliases.items():
            if target in self.counted:
                self.counted[alias] = self.counted[target]

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        if self.local is not None:  # the pipeline calls `before_now` instead; this is for callers that await
            return self._before_local(ctx, body)
        caller = ctx.caller
        if caller is None or body is None:
            return None
        end_user = ctx.end_user_limits
        limits = caller.limits if end_user is None else self._with_end_user(caller.limits, end_user)
        if (not limits and ctx.model not in self.counted) or (plan := self._plan(ctx, limits)) is None:
            return None
        entries, deployment = plan.entries, plan.deployment
        if deployment is not None and ctx.answer_known:
            # answered from the cache's copy: the deployment is not counted (and so not given back)
            entries, deployment = plan.caller_entries, None
            if not entries:
                return None
        estimate = estimate_tokens(body, TEXT_FIELDS.get(ctx.route.name, ALL_TEXT)) if plan.tokens else 0
        verdict = await self.store.acquire(entries, estimate)
        if verdict.admitted:
            ctx.counted_deployment = deployment
        else:
            if deployment is None or verdict.refused_by < len(plan.caller_entries):
                raise _refusal(caller, plan, verdict)
            # the deployment is used up (every worker's count): the router's pre-call checks skip
            # it now, and the caller's limits are counted alone
            assert self.strategy is not None
            self.strategy.used_up_elsewhere(deployment, verdict)
            entries = plan.caller_entries
            if not entries:
                return None
            verdict = await self.store.acquire(entries, estimate)
            if not verdict.admitted:
                raise _refusal(caller, plan, verdict)
        ctx.limits_held = (verdict.store, entries, verdict.counts, estimate)
        if plan.key_model and self.gauging:
            ctx.limits_plan = plan
        if plan.requests_headers or plan.tokens_headers:
            ctx.response_headers += _headers(plan, verdict.counts)
        return None

    def _before_local(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        """`before` with the in-process store, which never waits: the pipeline's `before_now` (a
        caller without limits, the master key, costs a call and two reads, no coroutine)."""
        caller = ctx.caller
        if caller is None or body is None:
            return None
        end_user = ctx.end_user_limits
        limits = caller.limits if end_user is None else self._with_end_user(caller.limits, end_user)
        if not limits:
            return None
        # _plan's usual case inline (a call less): this caller's plan for this model, known
        plan = self._plans.get((id(limits), ctx.model))
        if plan is None or plan.limits is not limits or ctx.route.name in NO_LIMIT_BODY:
            if (plan := self._plan(ctx, limits)) is None:
                return None
        elif not plan.entries:
            return None
        entries = plan.entries
        estimate = estimate_tokens(body, TEXT_FIELDS.get(ctx.route.name, ALL_TEXT)) if plan.tokens else 0
        local = self.local
        assert local is not None
        counts: Counts | None
        # admitted (the common case): counted at once, no verdict
        if (counts := local.take(entries, estimate)) is not None:
            ctx.limits_held = (local, entries, counts, estimate)
        else:
            verdict = local.acquire_now(entries, estimate)
            if not verdict.admitted:
                raise _refusal(caller, plan, verdict)
            counts = verdict.counts
            ctx.limits_held = (verdict.store, entries, counts, estimate)
        if plan.key_model and self.gauging:
            ctx.limits_plan = plan
        if plan.requests_headers or plan.tokens_headers:
            ctx.response_headers += _headers(plan, counts)
        return None

    def _plan(self, ctx: RequestContext, limits: tuple[Limits, ...]) -> Plan | None:
        """What a request of a caller with limits is checked against; None: nothing to check."""
        if ctx.route.name in NO_LIMIT_BODY:
            return None
        model = ctx.model
        plan = self._plans.get((id(limits), model))
        if plan is None or plan.limits is not limits:  # (an id is only reused once its tuple is gone)
            plan = self._remember(limits, model)
        return plan if plan.entries else None

    def _with_end_user(self, limits: tuple[Limits, ...], end_user: Limits) -> tuple[Limits, ...]:
        """The caller's limits and then its end user's, as one tuple that stays the same object
        while both do (their caches keep them), so that its Plan is found again."""
        key = (id(limits), id(end_user))
        known = self._joined.get(key)
        if known is not None and known[0] is limits and known[1] is end_user:
            return known[2]
        if len(self._joined) >= MAX_REMEMBERED:
            self._joined.clear()
        joined = (*limits, end_user)
        self._joined[key] = (limits, end_user, joined)
        return joined

    def _remember(self, limits: tuple[Limits, ...], model: str | None) -> Plan:
        plan = Plan(limits, model, self.counted.get(model) if model is not None else None)
        if plan.key_model and self.metrics is not None:
            self.gauging = True  # (until then, no request reads ctx.limits_plan)
        if len(self._plans) >= MAX_REMEMBERED:
            self._plans.clear()
        self._plans[(id(limits), model)] = plan
        return plan

    async def after(self, ctx: RequestContext) -> None:
        self.after_now(ctx)

    async def close(self) -> None:
        await self.store.close()  # (Redis's: its leases end and are settled)

    def after_now(self, ctx: RequestContext) -> None:
        """Plain for both stores: neither's release waits (Redis's is sent without its reply)."""
        held = ctx.limits_held
        if held is None:
            return
        usage = ctx.usage
        if usage is not None:
            used = usage.prompt_tokens + usage.completion_tokens  # (total_tokens: a property, a call more)
        elif ctx.status >= 400 and ctx.status != CLIENT_GONE:
            used = 0  # refused or failed: nothing to count
        else:
            used = held[3]  # answered without usage, or the client left mid-answer: the estimate
        if self.gauging and (plan := ctx.limits_plan) is not None:
            self._note_left(ctx, plan, held[2], held[3], used)
        # (the store that counted it: Redis's fallback too while down; deployments only with Redis)
        if self.local is not None or ctx.counted_deployment is None:
            held[0].release_now(held, used)
        elif not ctx.counted_sent:  # never sent to the deployment counted last: its count given back
            held[0].release_now(held, used, GIVE_BACK)
        else:  # sent: its tokens are the answer's, unless a later try (the router counted it) answered
            held[0].release_now(held, used, NO_TOKENS if ctx.retries or ctx.fallbacks else SETTLE)

    def _note_left(self, ctx: RequestContext, plan: Plan, counts: Counts, estimate: int, used: int) -> None:
        """What the key has left of its per-model limits once this request is settled: its window's
        counts then (the in-process store's: as they are now), its estimate replaced by `used`."""
        caller = ctx.caller
        if caller is None or caller.key_hash is None or ctx.model is None:
            return
        deployment = ctx.deployment
        metrics = self.metrics
        # (None: no deployment answered, a cache hit or a refusal: the one that answered it last)
        model_id = metrics.deployment_labels(deployment)[1] if deployment is not None and metrics else None
        for i, rpm, tpm in plan.key_model:
            count = counts[i]
            requests = None if rpm is None else max(0, rpm - int(count[1]))
            tokens = None if tpm is None else max(0, tpm - int(count[2] - estimate + used))
            labels = (caller.key_hash[:HASH_PREFIX], caller.key_alias or "", ctx.model)
            self._left[labels] = (model_id, requests, tokens)

    def _push_left(self) -> None:
        """The metrics' batch: the gauges of the keys noted since the last push."""
        metrics, left = self.metrics, self._left
        if metrics is None or not left:
            return
        self._left = {}
        ids = self._left_ids
        for labels, (model_id, requests, tokens) in left.items():
            if model_id is None:
                model_id = ids.get(labels, "")
            else:
                if len(ids) >= MAX_REMEMBERED and labels not in ids:
                    ids.clear()
                ids[labels] = model_id
            if requests is not None:
                metrics.key_model_requests_left.labels(*labels, model_id).set(requests)
            if tokens is not None:
                metrics.key_model_tokens_left.labels(*labels, model_id).set(tokens)


class GlobalCap(Hook):
    """general_settings.global_max_parallel_requests: the LLM requests in flight at once in this
    worker process, whoever sends them (the master key too), as LiteLLM counts it in each
    instance's memory; past it a 429 with retry-after, before the body is read. In the list only
    when the config sets it; after the key check, so a refused key takes no place."""

    name = "global cap"

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.in_flight = 0

    async def on_request(self, ctx: RequestContext) -> None:
        self.on_request_now(ctx)

    def on_request_now(self, ctx: RequestContext) -> None:
        route = ctx.route
        if not route.body or route.name in NO_LIMIT_BODY:  # /v1/models, count_tokens: no model called
            return
        if self.in_flight >= self.cap:
            raise RateLimited(
                f"rate limit reached: the gateway is at its global_max_parallel_requests limit of "
                f"{self.cap} requests at once; retry after 1 s",
                headers={"retry-after": "1"},
            )
        self.in_flight += 1
        ctx.in_global = True

    async def after(self, ctx: RequestContext) -> None:
        self.after_now(ctx)

    def after_now(self, ctx: RequestContext) -> None:
        if ctx.in_global:  # (it ended, however: answered, failed, refused later, abandoned)
            self.in_flight -= 1


def entries_for(limits: Iterable[Limits], model: str | None) -> tuple[Entry, ...]:
    """The counters a request is checked against, in the Caller's order (key, team, user, …)."""
    entries: list[Entry] = []
    for limit in limits:
        if limit.rpm is not None or limit.tpm is not None or limit.parallel is not None:
            entries.append((limit.scope, limit.rpm, limit.tpm, limit.parallel))
        if model is not None and (limit.model_rpm or limit.model_tpm):
            rpm, tpm = limit.model_rpm.get(model), limit.model_tpm.get(model)
            if rpm is not None or tpm is not None:
                entries.append((f"{limit.scope}/model:{model}", rpm, tpm, None))
    return tuple(entries)


def estimate_tokens(body: Mapping[str, Any], fields: tuple[str, ...] = ALL_TEXT) -> int:
    """A cheap guess of what a request will count: its text's length / 4 (about a token per four
    characters of English) plus the output it allows (max_tokens), when it sets one. `fields`:
    where its endpoint puts text (TEXT_FIELDS)."""
    chars = 0
    for name in fields:
        value = body.get(name)
        if type(value) is list:  # messages, inputs: their items here (a call costs more than the loop)
            for item in value:
                if type(item) is dict:  # a message: its members
                    for key, member in item.items():
                        if key not in NOT_TEXT:
                            chars += len(member) if type(member) is str else _text_length(member)
                else:
                    chars += len(item) if type(item) is str else _text_length(item)
        elif value is not None:
            chars += len(value) if type(value) is str else _text_length(value)
    out = body.get("max_tokens") or body.get("max_completion_tokens")
    return chars // 4 + (out if type(out) is int and out > 0 else 0)


def _text_length(value: Any) -> int:
    """The characters of the strings in a parsed JSON value, but those of NOT_TEXT members. (Exact
    types: the body is orjson's, and `type(x) is` costs a third of an isinstance call.)"""
    kind = type(value)
    if kind is str:
        return len(value)
    total = 0
    if kind is list:
        for item in value:
            total += len(item) if type(item) is str else _text_length(item)
    elif kind is dict:
        for key, item in value.items():
            if key not in NOT_TEXT:
                total += len(item) if type(item) is str else _text_length(item)
    return total


def _refusal(caller: Caller, plan: Plan, verdict: Verdict) -> RateLimited:
    """The 429 of a refused request: retry-after and the x-ratelimit-* headers."""
    headers = _headers(plan, verdict.counts)
    retry = verdict.retry_after()
    return RateLimited(
        _message(caller, plan.entries[verdict.refused_by], verdict.limit, retry),
        headers={"retry-after": str(retry), **{k.decode(): v.decode() for k, v in headers}},
    )


def _headers(plan: Plan, counts: Counts) -> Headers:
    """OpenAI's x-ratelimit-* headers, from the scope with the least left of each limit."""
    one = plan.one_each
    if one is not None:  # one scope with an rpm and one with a tpm (a key's: the usual), without loops
        i, rpm, rpm_header, j, tpm, tpm_header = one
        requests_left, tokens_left = rpm - counts[i][1], tpm - counts[j][2]
        return [
            rpm_header,
            (b"x-ratelimit-remaining-requests", b"%d" % (requests_left if requests_left > 0 else 0)),
            tpm_header,
            (b"x-ratelimit-remaining-tokens", b"%d" % (tokens_left if tokens_left > 0 else 0)),
        ]
    requests = tokens = None  # the least left
    for i, limit, limit_header in plan.requests_headers:
        left = limit - counts[i][1]
        if requests is None or left < requests:
            requests, requests_header = left, limit_header
    for i, limit, limit_header in plan.tokens_headers:
        left = limit - counts[i][2]
        if tokens is None or left < tokens:
            tokens, tokens_header = left, limit_header
    if tokens is None:
        if requests is None:
            return []
        return [requests_header, (b"x-ratelimit-remaining-requests", b"%d" % (requests if requests > 0 else 0))]
    if requests is None:
        return [tokens_header, (b"x-ratelimit-remaining-tokens", b"%d" % (tokens if tokens > 0 else 0))]
    return [
        requests_header,
        (b"x-ratelimit-remaining-requests", b"%d" % (requests if requests > 0 else 0)),
        tokens_header,
        (b"x-ratelimit-remaining-tokens", b"%d" % (tokens if tokens > 0 else 0)),
    ]


SCOPE_NAMES = {"key": "key", "team": "team", "user": "user", "end_user": "end user", "org": "organization"}
LIMIT_TEXT = {
    "rpm": "rpm limit of {} requests per minute",
    "tpm": "tpm limit of {} tokens per minute",
    "parallel": "max_parallel_requests limit of {} requests at once",
}


def _message(caller: Caller, entry: Entry, limit: str, retry: int) -> str:
    """Which limit of whose: the key's alias (or the start of its hash), never the key."""
    name, rpm, tpm, parallel = entry
    scope, _, model = name.partition("/model:")
    kind, _, ident = scope.partition(":")
    if kind == "key":
        who = f"key '{caller.key_alias}'" if caller.key_alias else f"key with hash {ident[:12]}…"
    else:
        who = f"{SCOPE_NAMES.get(kind, kind)} '{ident}'"
    value = rpm if limit == "rpm" else tpm if limit == "tpm" else parallel
    what = LIMIT_TEXT[limit].format(value)
    if model:
        what = f"model_{what} for model group '{model}'"
    return f"rate limit reached: {who} is at its {what}; retry after {retry} s"
