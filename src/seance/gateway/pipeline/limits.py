"""Rate limits: requests per minute, tokens per minute and requests in flight, for every Limits the
caller carries (its key's, team's, user's, end user's: set by the auth hook) and, per model group,
their model_rpm_limit / model_tpm_limit for the requested model.

    before   check every scope at once and count the request (one store call: one Redis round
             trip); at a limit: 429 with retry-after and OpenAI's x-ratelimit-* headers
    after    settle the tokens to the real usage (streams too) and end the in-flight count

Tokens are reserved before the answer from an estimate, so concurrent requests see each other's
share: a scope is admitted while its counted tokens are under its tpm (LiteLLM's check), and the
estimate is the request's text length / 4 plus its max_tokens when it sets one. A burst therefore
overruns tpm by at most one request's worth per worker.

The hook is in the list only when limits can exist (hooks.Features.limits: a keys store is
configured); a request whose caller has no limits (the master key) returns at the first check.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from typing import Any

from seance.gateway.context import Caller, Headers, Limits, RequestContext
from seance.gateway.errors import RateLimited
from seance.gateway.pipeline import Answer, Hook
from seance.gateway.ratelimits import Count, Entry, Held, Store
from seance.gateway.ratelimits.memory import MemoryStore

# parts of a message that are not text the model reads as tokens of that size (data URLs, files)
NOT_TEXT = frozenset({"image_url", "input_audio", "file", "source", "image", "audio"})
TEXT_FIELDS = ("messages", "input", "prompt", "system", "suffix")
NO_LIMIT_BODY = frozenset({"count_tokens"})  # routes that call no model
CLIENT_GONE = 499
MAX_REMEMBERED = 4096  # callers' entries kept; past it the table starts again


class RateLimits(Hook):
    name = "limits"
    needs_usage = True

    def __init__(self, store: Store) -> None:
        self.store = store
        self.local = store if isinstance(store, MemoryStore) else None
        # in-flight ids for the shared store: unique across replicas by the random tag, cheap by the count
        self.tag = os.urandom(6).hex()
        self.count = itertools.count()
        # (the caller's limits, model) -> the entries and whether any has a tpm: the same callers ask
        # again and again (cached keys keep their Limits objects), so their entries are made once
        self._entries: dict[tuple[int, str | None], tuple[tuple[Limits, ...], tuple[Entry, ...], bool]] = {}

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        caller = ctx.caller
        if caller is None or not caller.limits or body is None or ctx.route.name in NO_LIMIT_BODY:
            return None
        limits, model = caller.limits, ctx.model
        known = self._entries.get((id(limits), model))
        if known is None or known[0] is not limits:  # (an id is only reused once its tuple is gone)
            known = self._remember(limits, model)
        _, entries, tokens = known
        if not entries:
            return None
        estimate = estimate_tokens(body) if tokens else 0
        if self.local is not None:  # in this process: answered at once, no coroutine in between
            request_id = ""
            verdict = self.local.acquire_now(entries, estimate)
        else:
            request_id = f"{self.tag}{next(self.count):x}"
            verdict = await self.store.acquire(entries, estimate, request_id)
        headers = _headers(entries, verdict.counts)
        if not verdict.admitted:
            retry = verdict.retry_after()
            raise RateLimited(
                _message(caller, entries[verdict.refused_by], verdict.limit, retry),
                headers={"retry-after": str(retry), **{k.decode(): v.decode() for k, v in headers}},
            )
        ctx.limits_held = Held(verdict.store, entries, tuple(c.start for c in verdict.counts), estimate, request_id)
        if headers:
            ctx.response_headers += headers
        return None

    def _remember(
        self, limits: tuple[Limits, ...], model: str | None
    ) -> tuple[tuple[Limits, ...], tuple[Entry, ...], bool]:
        entries = entries_for(limits, model)
        known = (limits, entries, any(e.tpm is not None for e in entries))
        if len(self._entries) >= MAX_REMEMBERED:
            self._entries.clear()
        self._entries[(id(limits), model)] = known
        return known

    async def after(self, ctx: RequestContext) -> None:
        held = ctx.limits_held
        if held is None:
            return
        if ctx.usage is not None:
            used = ctx.usage.total_tokens
        elif ctx.status >= 400 and ctx.status != CLIENT_GONE:
            used = 0  # refused or failed: nothing to count
        else:
            used = held.estimate  # answered without usage, or the client left mid-answer: the estimate
        store = held.store
        if isinstance(store, MemoryStore):  # (also a Redis store's fallback while Redis is down)
            store.release_now(held, used)
        else:
            await store.release(held, used)


def entries_for(limits: Iterable[Limits], model: str | None) -> tuple[Entry, ...]:
    """The counters a request is checked against, in the Caller's order (key, team, user, …)."""
    entries: list[Entry] = []
    for limit in limits:
        if limit.rpm is not None or limit.tpm is not None or limit.parallel is not None:
            entries.append(Entry(limit.scope, limit.rpm, limit.tpm, limit.parallel))
        if model is not None and (limit.model_rpm or limit.model_tpm):
            rpm, tpm = limit.model_rpm.get(model), limit.model_tpm.get(model)
            if rpm is not None or tpm is not None:
                entries.append(Entry(f"{limit.scope}/model:{model}", rpm, tpm, None))
    return tuple(entries)


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """A cheap guess of what a request will count: its text's length / 4 (about a token per four
    characters of English) plus the output it allows (max_tokens), when it sets one."""
    chars = 0
    for name in TEXT_FIELDS:
        value = body.get(name)
        if value is not None:
            chars += _text_length(value)
    out = body.get("max_tokens") or body.get("max_completion_tokens")
    return chars // 4 + (out if isinstance(out, int) and out > 0 else 0)


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    total = 0
    if isinstance(value, list):
        for item in value:
            total += len(item) if isinstance(item, str) else _text_length(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in NOT_TEXT:
                total += len(item) if isinstance(item, str) else _text_length(item)
    return total


def _headers(entries: tuple[Entry, ...], counts: tuple[Count, ...]) -> Headers:
    """OpenAI's x-ratelimit-* headers, from the scope with the least left of each limit."""
    requests = tokens = None  # (limit, left) of the tightest scope
    for entry, count in zip(entries, counts, strict=True):
        if entry.rpm is not None and (requests is None or entry.rpm - count.requests < requests[1]):
            requests = (entry.rpm, entry.rpm - count.requests)
        if entry.tpm is not None and (tokens is None or entry.tpm - count.tokens < tokens[1]):
            tokens = (entry.tpm, entry.tpm - count.tokens)
    headers: Headers = []
    if requests is not None:
        headers += (
            (b"x-ratelimit-limit-requests", b"%d" % requests[0]),
            (b"x-ratelimit-remaining-requests", b"%d" % max(0, requests[1])),
        )
    if tokens is not None:
        headers += (
            (b"x-ratelimit-limit-tokens", b"%d" % tokens[0]),
            (b"x-ratelimit-remaining-tokens", b"%d" % max(0, tokens[1])),
        )
    return headers


SCOPE_NAMES = {"key": "key", "team": "team", "user": "user", "end_user": "end user", "org": "organization"}
LIMIT_TEXT = {
    "rpm": "rpm limit of {} requests per minute",
    "tpm": "tpm limit of {} tokens per minute",
    "parallel": "max_parallel_requests limit of {} requests at once",
}


def _message(caller: Caller, entry: Entry, limit: str, retry: int) -> str:
    """Which limit of whose: the key's alias (or the start of its hash), never the key."""
    scope, _, model = entry.name.partition("/model:")
    kind, _, ident = scope.partition(":")
    if kind == "key":
        who = f"key '{caller.key_alias}'" if caller.key_alias else f"key with hash {ident[:12]}…"
    else:
        who = f"{SCOPE_NAMES.get(kind, kind)} '{ident}'"
    value = entry.rpm if limit == "rpm" else entry.tpm if limit == "tpm" else entry.parallel
    what = LIMIT_TEXT[limit].format(value)
    if model:
        what = f"model_{what} for model group '{model}'"
    return f"rate limit reached: {who} is at its {what}; retry after {retry} s"
