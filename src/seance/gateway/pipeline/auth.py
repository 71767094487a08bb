"""Who is calling: the master key today (virtual keys plug in here). Before every route that needs a
key; a constant-time comparison, and messages that say which key is meant without echoing it."""

from __future__ import annotations

import hmac

from seance.gateway.context import Caller, RequestContext
from seance.gateway.errors import Unauthorized
from seance.gateway.pipeline import Hook

MASTER = Caller("master")
ANONYMOUS = Caller("anonymous")


class Auth(Hook):
    name = "auth"

    def __init__(self, master_key: str | None, allow_no_auth: bool) -> None:
        self.master_key = master_key.encode() if master_key else None
        self.allow_no_auth = allow_no_auth

    async def on_request(self, ctx: RequestContext) -> None:
        if not ctx.route.auth:
            return
        if self.master_key is None:
            if not self.allow_no_auth:  # unreachable: the CLI refuses to start so
                raise Unauthorized("no master key is configured")
            ctx.caller = ANONYMOUS
            return
        presented = ctx.credential
        if presented[:7].lower() == b"bearer ":
            presented = presented[7:].strip()
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
