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

import os
from collections.abc import Iterable, Mapping
from typing import Any

from seance.gateway.context import Caller, Limits, RequestContext
from seance.gateway.errors import RateLimited
from seance.gateway.pipeline import Answer, Hook
from seance.gateway.ratelimits import Entry, Held, Store, Verdict

# parts of a message that are not text the model reads as tokens of that size (data URLs, files)
NOT_TEXT = frozenset({"image_url", "input_audio", "file", "source", "image", "audio"})
TEXT_FIELDS = ("messages", "input", "prompt", "system", "suffix")
OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens")
NO_LIMIT_BODY = frozenset({"count_tokens"})  # routes that call no model
CLIENT_GONE = 499


class RateLimits(Hook):
    name = "limits"
    needs_usage = True

    def __init__(self, store: Store) -> None:
        self.store = store

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        caller = ctx.caller
        if caller is None or not caller.limits or body is None or ctx.route.name in NO_LIMIT_BODY:
            return None
        entries = entries_for(caller.limits, ctx.model)
        if not entries:
            return None
        estimate = estimate_tokens(body) if any(e.tpm is not None for e in entries) else 0
        request_id = os.urandom(8).hex()
        verdict = await self.store.acquire(entries, estimate, request_id)
        headers = _headers(entries, verdict)
        if not verdict.admitted:
            retry = verdict.retry_after()
            raise RateLimited(
                _message(caller, entries[verdict.refused_by], verdict.limit, retry),
                headers={"retry-after": str(retry), **headers},
            )
        ctx.limits_held = Held(verdict.store, entries, tuple(c.start for c in verdict.counts), estimate, request_id)
        if headers:
            ctx.response_headers += [(k.encode(), v.encode()) for k, v in headers.items()]
        return None

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
        await held.store.release(held, used)


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
    chars = sum(_text_length(body.get(name)) for name in TEXT_FIELDS)
    out = next((v for name in OUTPUT_FIELDS if isinstance(v := body.get(name), int) and v > 0), 0)
    return chars // 4 + out


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    if isinstance(value, dict):
        return sum(_text_length(v) for k, v in value.items() if k not in NOT_TEXT)
    return 0


def _headers(entries: tuple[Entry, ...], verdict: Verdict) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, from the scope with the least left of each limit."""
    headers: dict[str, str] = {}
    requests = [(e.rpm, c.requests) for e, c in zip(entries, verdict.counts, strict=True) if e.rpm is not None]
    if requests:
        limit, used = min(requests, key=lambda lu: lu[0] - lu[1])
        headers["x-ratelimit-limit-requests"] = str(limit)
        headers["x-ratelimit-remaining-requests"] = str(max(0, limit - used))
    tokens = [(e.tpm, c.tokens) for e, c in zip(entries, verdict.counts, strict=True) if e.tpm is not None]
    if tokens:
        limit, used = min(tokens, key=lambda lu: lu[0] - lu[1])
        headers["x-ratelimit-limit-tokens"] = str(limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limit - used))
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
