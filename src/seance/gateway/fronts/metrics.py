"""GET /metrics: Prometheus' text format, off the request path (no hooks; the budgets are read from
the store, and the text made in a thread, so that a scrape never holds the event loop).

A scrape presents the master key or the metrics key (SEANCE_METRICS_KEY), as a bearer token or
x-api-key, unless `litellm_settings.require_auth_for_metrics_endpoint: false` opens it (LiteLLM's
setting; for a Prometheus that scrapes pod annotations and so sends no key).
"""

from __future__ import annotations

import asyncio
import hmac

from seance.gateway.context import RequestContext, presented_key
from seance.gateway.errors import GatewayError, Unauthorized
from seance.gateway.metrics import Metrics


class MetricsFront:
    def __init__(self, metrics: Metrics | None, keys: tuple[str, ...], require_auth: bool) -> None:
        self.metrics = metrics
        self.keys = tuple(key.encode() for key in keys if key)
        self.require_auth = require_auth and bool(self.keys)  # no key at all: --allow-no-auth

    async def scrape(self, ctx: RequestContext) -> bytes:
        if self.metrics is None:
            raise GatewayError(
                "metrics are off: add prometheus to litellm_settings.callbacks, or start with --metrics",
                status=404, code="not_found",
            )  # fmt: skip
        if self.require_auth:
            self._check(ctx.credential)
        await self.metrics.refresh_budgets()
        self.metrics.push()  # here, in the event loop: this process's counts are exact in its answer
        return await asyncio.to_thread(self.metrics.exposition)

    def _check(self, credential: bytes) -> None:
        presented = presented_key(credential)
        if not presented:
            raise Unauthorized(
                "missing API key: /metrics wants the gateway's key or the metrics key (SEANCE_METRICS_KEY) as "
                "'Authorization: Bearer <key>', unless litellm_settings.require_auth_for_metrics_endpoint is false"
            )
        # every key compared, in constant time each, so the answer's timing tells nothing
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(presented, key)
        if not matched:
            raise Unauthorized("invalid API key for /metrics: use the gateway's key or the metrics key")
