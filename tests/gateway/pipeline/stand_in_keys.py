"""A stand-in for virtual keys (another branch) until they land: a hook that makes every request a
key's with the given Limits, and `python -m tests.gateway.pipeline.stand_in_keys` to serve the real
gateway (uvicorn, N workers, the config's Redis) with it, for end-to-end tests of rate limits.

    python -m tests.gateway.pipeline.stand_in_keys CONFIG PORT WORKERS LIMITS_JSON
"""

from __future__ import annotations

import os
import sys

import orjson

from seance.gateway.context import Caller, Limits, RequestContext
from seance.gateway.pipeline import Hook

KEY_HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


class GiveLimits(Hook):
    """The request is a key's, with these limits (set after the master-key check)."""

    name = "test-keys"

    def __init__(self, *limits: Limits, alias: str | None = "ci-bot") -> None:
        self.caller = Caller("virtual_key", key_hash=KEY_HASH, key_alias=alias, team_id="t1", limits=limits)

    async def on_request(self, ctx: RequestContext) -> None:
        ctx.caller = self.caller


def main(config: str, port: str, workers: str, limits_json: str) -> None:
    from seance.gateway.app import Gateway
    from seance.gateway.config import load_settings
    from seance.gateway.logs import setup
    from seance.gateway.pipeline import hooks
    from seance.gateway.server import serve
    from seance.gateway.shared_state import find_redis

    setup("info", "plain")
    settings = load_settings(config)
    features = hooks.Features(settings.master_key, limits=True, redis=find_redis(settings))
    hook_list = hooks.build(features)
    limits = [Limits(**spec) for spec in orjson.loads(limits_json)]
    hook_list.insert(1, GiveLimits(*limits))  # right after the master-key check
    lease_ttl = os.environ.get("STAND_IN_LEASE_TTL")  # a test's: how long a lease admits requests
    if lease_ttl is not None:
        from seance.gateway.pipeline.limits import RateLimits
        from seance.gateway.ratelimits.shared import SharedStore

        for hook in hook_list:
            if isinstance(hook, RateLimits) and isinstance(hook.store, SharedStore):
                hook.store.lease_ttl = float(lease_ttl)
    serve(Gateway(settings, hook_list), host="127.0.0.1", port=int(port), workers=int(workers))


if __name__ == "__main__":
    main(*sys.argv[1:])
