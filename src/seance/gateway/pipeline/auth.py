"""Who is calling: the master key (`Auth`), and virtual keys besides when the gateway has a store
(`KeyAuth`). Before every route that needs a key; a constant-time comparison for the master key,
and messages that say which key is meant without echoing it."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from seance.gateway.context import Caller, RequestContext, presented_key
from seance.gateway.errors import Forbidden, Unauthorized
from seance.gateway.pipeline import Answer, Hook
from seance.gateway.store.keys import model_allowed, over_budget, past_soft_budget
from seance.gateway.store.model_budgets import governing

if TYPE_CHECKING:
    from seance.gateway.store import Store

MASTER = Caller("master")
ANONYMOUS = Caller("anonymous")


class Auth(Hook):
    name = "auth"

    def __init__(self, master_key: str | None, allow_no_auth: bool) -> None:
        self.master_key = master_key.encode() if master_key else None
        self.allow_no_auth = allow_no_auth

    async def on_request(self, ctx: RequestContext) -> None:
        self.on_request_now(ctx)

    def on_request_now(self, ctx: RequestContext) -> None:
        if not ctx.route.auth:
            return
        if self.master_key is None:
            if not self.allow_no_auth:  # unreachable: the CLI refuses to start so
                raise Unauthorized("no master key is configured")
            ctx.caller = ANONYMOUS
            return
        presented = presented_key(ctx.credential)
        if not presented:
            raise Unauthorized(
                "missing API key: send the gateway's key (LITELLM_MASTER_KEY) as "
                "'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        if not hmac.compare_digest(presented, self.master_key):
            raise Unauthorized(
                "invalid API key: this gateway accepts its own key (LITELLM_MASTER_KEY or "
                "general_settings.master_key), not a provider's"
            )
        ctx.caller = MASTER


class KeyAuth(Auth):
    """The master key, then virtual keys (`/key/generate`): the master key costs what it costs in
    `Auth`; a virtual key one hash and one dict lookup when it was used in the last seconds (the
    key cache: `store/keys.py`). `before` checks what needs the body: the model (the key's models)
    and the end user's budget (the request's `user`)."""

    # waits for the database for a key not in the key cache: the awaited stage, not Auth's plain one
    on_request_now = Hook.on_request_now

    def __init__(
        self, master_key: str | None, allow_no_auth: bool, store: Store, end_user_headers: tuple[str, ...] = ()
    ) -> None:
        """`end_user_headers`: the config's headers that name the end user (user_header_mappings),
        after LiteLLM's own two."""
        super().__init__(master_key, allow_no_auth)
        self.store = store
        self.end_user_headers = (*END_USER_HEADERS, *end_user_headers)
        self.keys = store.keys
        self.ledger = store.ledger

    async def on_request(self, ctx: RequestContext) -> None:
        if not ctx.route.auth:
            return
        presented = presented_key(ctx.credential)
        if self.master_key is not None and hmac.compare_digest(presented, self.master_key):
            ctx.caller = MASTER
            return
        if not presented:
            Auth.on_request_now(self, ctx)  # its messages: missing key, or anonymous
            return
        keys = self.keys
        entry = keys.cached(presented) or await keys.verified(presented)  # (hashed again on a miss only)
        if entry.budgets and (exceeded := over_budget(self.ledger, entry.budgets)) is not None:
            raise exceeded
        if entry.soft_budget is not None and not entry.warned:
            past_soft_budget(self.ledger, entry)
        ctx.caller = entry.caller

    async def before(self, ctx: RequestContext, body: dict[str, Any] | None) -> Answer | None:
        caller = ctx.caller
        models = caller.models if caller is not None else None
        if models is not None and ctx.model is not None and not model_allowed(models, ctx.model):
            assert caller is not None
            allowed = ", ".join(sorted(models)) or "none"
            raise Forbidden(
                f"key {caller.key_alias or 'without alias'} is not allowed to use model {ctx.model}; "
                f"it may use: {allowed}",
                param="model",
                code="model_not_allowed",
            )
        if caller is not None and caller.model_budgets is not None and ctx.model is not None:
            covering = caller.model_budgets.covering(ctx.model)
            if covering:
                if (exceeded := over_budget(self.ledger, covering)) is not None:
                    raise exceeded
                ctx.model_budget_scopes = tuple(budget.scope for budget in covering)
        if body is None:
            return None
        # (most requests send no option header: the body's `user` read inline, without a call)
        end_user = self._end_user(ctx.header_options, body) if ctx.header_options else body.get("user")
        if type(end_user) is str and end_user:
            if "\x00" in end_user:  # (no PostgreSQL text holds a NUL: the spend log's rows and totals)
                end_user = end_user.replace("\x00", "")
            ctx.end_user = end_user[:256] or None
            held = await self.store.end_user(ctx.end_user) if ctx.end_user else None
            if held is not None:
                if held.budget is not None and (exceeded := over_budget(self.ledger, (held.budget,))) is not None:
                    raise exceeded
                ctx.end_user_limits = held.limits
                if held.model_budgets and ctx.model is not None:
                    by_model = governing(held.model_budgets, ctx.model)
                    if by_model is not None:
                        if (exceeded := over_budget(self.ledger, (by_model,))) is not None:
                            raise exceeded
                        ctx.model_budget_scopes += (by_model.scope,)
        return None

    def _end_user(self, options: Mapping[str, str], body: dict[str, Any]) -> Any:
        """The request's end user, where LiteLLM looks first: the x-litellm-customer-id or
        x-litellm-end-user-id header (apps in front of the gateway send them), then the config's
        headers, else the body's `user`."""
        for name in self.end_user_headers:
            named = options.get(name)
            if named:
                return named
        return body.get("user")


# LiteLLM's headers that name the end user, always read (app.OPTIONS holds them)
END_USER_HEADERS = ("x-litellm-customer-id", "x-litellm-end-user-id")
