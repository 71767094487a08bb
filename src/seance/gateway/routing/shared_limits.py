"""Deployments' `rpm` and `tpm` shared by every worker and replica through Redis/Valkey, when one is
configured: with router_settings.enable_pre_call_checks they are limits (strategies.py), and a
provider's quota is one quota however many gateways call it — as LiteLLM's router counts them in
its redis_host.

The deployment the strategy picked is checked and counted by the rate limits' own script
(ratelimits/shared.py: one round trip, atomic, on the server's clock, a 60-second window opened by
the first request; counted in this process while Redis is unreachable, one WARNING); its tokens are
added after the answer, without waiting. No estimate is reserved, as the strategy's own count
reserves none: tokens count once they are used.

A deployment the shared count refuses is taken as used up by the strategy for the rest of its minute
and another of the group is picked (no retry spent, no cooldown: the provider was not called); when
none is left the group is used up — the 429 `no_deployments_available` of the pre-call checks, or
the group's fallbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from seance.gateway.errors import RateLimited
from seance.gateway.ratelimits import Entry, Verdict
from seance.gateway.ratelimits.shared import SharedStore
from seance.gateway.routing.deployments import MAX_DYNAMIC, Deployment

SCOPE = "deployment:"  # Redis keys: seance:rl:deployment:<id>
# a release's counts whose window start matches no window: its tokens go to the current one
NO_WINDOW = ((0, 0, 0, 0, 0, 0),)


class SharedDeploymentLimits:
    def __init__(self, store: SharedStore) -> None:
        self.store = store
        # deployment id -> (the deployment, its entry): the same tuple each time, so the store's
        # encoded commands are found again (SharedStore.commands)
        self._entries: dict[str, tuple[Deployment, tuple[Entry, ...]]] = {}

    def entries(self, deployment: Deployment) -> tuple[Entry, ...]:
        known = self._entries.get(deployment.id)
        if known is not None and known[0] is deployment:
            return known[1]
        if len(self._entries) >= MAX_DYNAMIC * 2:
            self._entries.clear()
        entries = ((SCOPE + deployment.id, deployment.rpm, deployment.tpm, None),)
        self._entries[deployment.id] = (deployment, entries)
        return entries

    def add_tokens(self, deployment: Deployment, tokens: int) -> None:
        """The tokens a request to the deployment used, added to its current window."""
        entries = self.entries(deployment)
        if self.store.down:  # counted in this process meanwhile: so are its tokens
            self.store.local.release_now((self.store.local, entries, NO_WINDOW, 0), tokens)
        else:
            self.store.release_now((self.store, entries, NO_WINDOW, 0), tokens)

    async def instead(
        self,
        refused: Deployment,
        verdict: Verdict,
        group: Sequence[Deployment],
        pick: Callable[[Sequence[Deployment]], Deployment],
        used_up: Callable[[Deployment, Verdict], None],
        refusal: Callable[[], RateLimited],
    ) -> tuple[Deployment, Sequence[Deployment]]:
        """The shared count refused `refused` (`verdict`; the router asks it of the store itself, a
        coroutine less on the usual way): another deployment of `group` that has room (`pick`), and
        the group it was picked from; each refusal told to the strategy (`used_up`). Raises
        `refusal()` when none has room."""
        deployment = refused
        while True:
            used_up(deployment, verdict)
            group = [d for d in group if d is not deployment]
            if not group:
                raise refusal()
            deployment = group[0] if len(group) == 1 else pick(group)
            if not deployment.limited:
                return deployment, group
            verdict = await self.store.acquire(self.entries(deployment), 0)
            if verdict.admitted:
                return deployment, group
