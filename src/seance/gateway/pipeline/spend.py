"""Spend: after each model request, one spend-log row (who, which model and deployment, tokens,
cost, times, status, tags) handed to the store's batch (`store/spend.py`) — no I/O here. The cost
is `ctx.cost` (the deployment's prices times the usage, set when the request finished)."""

from __future__ import annotations

import itertools
import os
import time
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from seance.gateway.context import MASTER_KEY_ALIAS, NOTHING, Caller, RequestContext
from seance.gateway.pipeline import Hook
from seance.gateway.store.keys import member_scope
from seance.gateway.store.spend import SpendRow, json_text

if TYPE_CHECKING:
    from seance.gateway.store import Store

CALL_TYPES = {"chat": "acompletion", "completion": "atext_completion", "embedding": "aembedding",
              "messages": "anthropic_messages", "count_tokens": "count_tokens"}  # fmt: skip
MAX_CALLERS = 4096  # callers whose scopes are kept; past it the table starts again


class Spend(Hook):
    name = "spend"
    needs_usage = True

    def __init__(self, store: Store, master_key: str | None, tag_headers: tuple[str, ...] = ()) -> None:
        """`tag_headers`: litellm_settings.extra_spend_tag_headers, as the config writes them (the
        app reads them into ctx.header_options, lower-cased)."""
        self.log = store.spend
        self.tag_headers = tuple((name, name.lower()) for name in tag_headers)
        self._new_process()
        _HOOKS.add(self)  # forked workers (server.py) start their own row ids: _after_fork
        # the master key's requests are logged under LiteLLM's alias for it (never the key's hash)
        self.master_label = MASTER_KEY_ALIAS if master_key else "anonymous"
        # the caller's scopes, made once per Caller (cached keys keep theirs): key, team, user, …
        self._scopes: dict[int, tuple[Caller, tuple[str, ...]]] = {}

    async def after(self, ctx: RequestContext) -> None:
        self.after_now(ctx)

    def after_now(self, ctx: RequestContext) -> None:
        caller = ctx.caller
        if caller is None or ctx.model is None:  # refused before it was a model request
            return
        usage = ctx.usage
        deployment = ctx.deployment
        key = caller.key_hash or self.master_label
        prompt, completion, cached = (0, 0, 0) if usage is None else (
            usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)  # fmt: skip
        fields = ctx.gateway_fields
        end_user = ctx.end_user  # (read once: unset, it is a class default, read by the generic lookup)
        endpoint = ctx.route.name  # (ctx.endpoint and ctx.duration, read without their properties' calls)
        model = ctx.model  # what the client asked for (a 404 too): cut to its column, and without a NUL,
        if len(model) > 256 or "\x00" in model:  # which no PostgreSQL text holds (it would stop the log)
            model = model.replace("\x00", "")[:256]
        ended = ctx.ended
        # tuple.__new__ makes the same SpendRow in C; the NamedTuple's own __new__ takes its 25
        # arguments in Python (~1 us a row). The order is SpendRow's (a test checks the fields).
        row = tuple.__new__(SpendRow, (
            self._row_id(),
            ctx.id[:128],  # (a client's x-request-id may be longer than the column)
            CALL_TYPES.get(endpoint, endpoint),
            key,
            caller.key_alias,
            caller.user_id,
            caller.team_id,
            caller.org_id,
            end_user,
            model,
            deployment.model_name if deployment is not None else model,
            deployment.id if deployment is not None else None,
            deployment.adapter.name if deployment is not None else None,
            prompt,
            completion,
            cached,
            prompt + completion,
            ctx.cost or 0.0,
            ctx.started_at,
            ctx.started_at + (ended - ctx.received if ended is not None else 0.0),
            "success" if 200 <= ctx.status < 400 else "failure",
            ctx.status,
            ctx.cache_hit,
            "[]" if fields is NOTHING and caller.metadata is NOTHING and not ctx.header_options
            else json_text(_tags(fields, caller.metadata, ctx.header_options, self.tag_headers)),
            "{}" if fields is NOTHING else json_text(_metadata(fields)),
        ))  # fmt: skip
        scopes = self._scopes_of(caller, key)
        if end_user:
            scopes += (f"end_user:{end_user}",)
        if ctx.model_budget_scopes:  # what is spent on a model that has a budget (the auth hook's)
            scopes += ctx.model_budget_scopes
        self.log.add(row, scopes)

    def _new_process(self) -> None:
        """This process's row ids: its time (hex() of time_ns is 16 digits until the year 2554) and a
        random tag, then a count."""
        self.tag = os.urandom(4).hex()
        self.prefix = hex(time.time_ns())[2:] + self.tag
        self.count = itertools.count(1)

    def _row_id(self) -> str:
        """Unique and increasing: the process's prefix, then a count in 8 hex digits (32 characters in
        all). A process's rows are appended at one place in the primary key's B-tree instead of
        anywhere in it (a random id cost 10 % more). The time is read again only when the count
        wraps: formatting it and the count for every row cost ~6k instructions (callgrind), the
        count alone ~2k."""
        count = next(self.count) & 0xFFFFFFFF
        if not count:  # (2**32 rows later: a later time, so still increasing)
            self.prefix = hex(time.time_ns())[2:] + self.tag
        return self.prefix + hex(0x100000000 | count)[3:]

    def _scopes_of(self, caller: Caller, key: str) -> tuple[str, ...]:
        """The totals a caller's spend adds to: its key, team, user, membership, organization."""
        known = self._scopes.get(id(caller))
        if known is not None and known[0] is caller:  # (an id is only reused once its Caller is gone)
            return known[1]
        scopes = [f"key:{key}"]
        if caller.team_id:
            scopes.append(f"team:{caller.team_id}")
        if caller.user_id:
            scopes.append(f"user:{caller.user_id}")
            if caller.team_id:
                scopes.append(member_scope(caller.team_id, caller.user_id))
        if caller.org_id:
            scopes.append(f"org:{caller.org_id}")
        if len(self._scopes) >= MAX_CALLERS:
            self._scopes.clear()
        made = tuple(scopes)
        self._scopes[id(caller)] = (caller, made)
        return made


_HOOKS: weakref.WeakSet[Spend] = weakref.WeakSet()


def _after_fork() -> None:
    """A forked worker inherits its parent's hooks (the app is built before the fork): each must
    make ids of its own, not the same prefix and count as its siblings."""
    for hook in list(_HOOKS):
        hook._new_process()


os.register_at_fork(after_in_child=_after_fork)


def _tags(
    fields: Any, key_metadata: Any, options: Mapping[str, str] = NOTHING, tag_headers: tuple[tuple[str, str], ...] = ()
) -> list[str]:
    """The request's tags (`tags`, or `metadata.tags` as LiteLLM's docs show, and the comma-separated
    x-litellm-tags header: a client that cannot change the body, such as Claude Code with
    ANTHROPIC_CUSTOM_HEADERS, can send that), the headers of extra_spend_tag_headers it carries as
    "<header>: <value>" (`tag_headers`: (as configured, lower-cased)), then the key's."""
    tags: list[str] = []
    header = options.get("x-litellm-tags")
    if fields is not NOTHING:
        metadata = fields.get("metadata")
        # (what the client sent, of any shape: a `metadata` that is not an object has no tags, and
        # a failure here would lose the request's spend row)
        for found in (fields.get("tags"), metadata.get("tags") if isinstance(metadata, dict) else None):
            if isinstance(found, list):
                tags.extend(str(t).replace("\x00", "")[:128] for t in found[:32])
    if header:
        tags.extend(tag[:128] for t in header.split(",")[:32] if (tag := t.strip()) and tag not in tags)
    for name, lowered in tag_headers:
        if (value := options.get(lowered, "").strip()) and (tag := f"{name}: {value}"[:128]) not in tags:
            tags.append(tag)
    if key_metadata is not NOTHING and isinstance(key_tags := key_metadata.get("tags"), list):
        tags.extend(str(t) for t in key_tags if str(t) not in tags)
    return tags


def _metadata(fields: Any) -> dict[str, Any]:
    metadata = fields.get("metadata") if fields is not NOTHING else None
    if not isinstance(metadata, dict):
        return {}
    return {
        k.replace("\x00", ""): v.replace("\x00", "") if isinstance(v, str) else v
        for k, v in metadata.items()
        if k != "tags" and isinstance(v, str | int | float | bool)
    }
