"""general_settings.background_health_checks: one cheap call per deployment every
health_check_interval seconds, in the background, feeding /health and the cooldowns.

    chat (the default)      {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    model_info.mode         completion: the prompt "hi", max_tokens 1; embedding: the input "hi"
    model_info.health_check_model   the model the probe asks for instead of the deployment's

The configured deployments are probed (a wildcard's are made per request: nothing to probe), at
most CONCURRENCY at a time, each bounded by its timeout (at most TIMEOUT). A probe's outcome is
recorded as real traffic's is (Health: last error, last success); a deployment whose probe fails
in a way a request would (a timeout, a reset, 408/429/5xx, 401/404) cools down at once, when its
group has another one. Each worker probes for itself. /health only reads what the probes found.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from seance.gateway.context import RequestContext
from seance.gateway.errors import GatewayError, UpstreamError
from seance.gateway.providers.base import Call, Operation
from seance.gateway.routes import HEALTH
from seance.gateway.routing.deployments import Deployment
from seance.gateway.routing.proxy import Proxy

DEFAULT_INTERVAL = 300.0  # LiteLLM's health_check_interval
CONCURRENCY = 4
TIMEOUT = 60.0
COOLING = frozenset({401, 404})  # a probe answered so: every request would be
log = logging.getLogger("seance.gateway")

PROBES: dict[str, tuple[Operation, dict[str, Any]]] = {
    "chat": ("chat", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}),
    "completion": ("completion", {"prompt": "hi", "max_tokens": 1}),
    "embedding": ("embedding", {"input": "hi"}),
}


class HealthChecks:
    def __init__(
        self,
        deployments: Sequence[Deployment],
        proxy: Proxy,
        record: Callable[[Deployment, GatewayError | None], None],
        interval: float | None = None,
    ) -> None:
        """`record(deployment, error)`: the router's bookkeeping of an outcome (None: success)."""
        self.deployments = [d for d in deployments if not d.missing_key and _probe(d) is not None]
        self.proxy = proxy
        self.record = record
        self.interval = interval or DEFAULT_INTERVAL
        self.checked: dict[str, float] = {}  # deployment id -> when its last probe ended (wall clock)
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> None:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(deployment: Deployment) -> None:
            async with limit:
                await self.check(deployment)

        await asyncio.gather(*(one(d) for d in self.deployments))

    async def check(self, deployment: Deployment) -> None:
        probe = _probe(deployment)
        assert probe is not None
        op, body = probe
        target = deployment.target
        model = deployment.model_info.get("health_check_model")
        if isinstance(model, str) and model:
            prefix = target.provider + "/"
            target = dataclasses.replace(target, model=model.removeprefix(prefix))
        call = Call(op, {"model": target.model, **body}, b"", False, target)
        ctx = RequestContext("health-check", HEALTH, "POST", "")
        error: GatewayError | None = None
        try:
            await self.proxy.complete(ctx, call, deployment, min(deployment.timeout, TIMEOUT))
        except GatewayError as exc:
            error = exc
        self.checked[deployment.id] = time.time()
        self.record(deployment, error)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # a bug: logged, and the checks go on
                log.exception("background health checks failed")
            await asyncio.sleep(self.interval)


def cools_down(error: GatewayError) -> bool:
    """Whether a failed probe is the deployment's trouble, not the probe's (a 400 for max_tokens 1
    on a reasoning model says nothing of the deployment)."""
    status = error.upstream_status if isinstance(error, UpstreamError) else None
    return error.retryable or error.status in COOLING or status in COOLING


def _probe(deployment: Deployment) -> tuple[Operation, dict[str, Any]] | None:
    mode = deployment.model_info.get("mode")
    probe = PROBES.get(mode if isinstance(mode, str) else "chat")
    if probe is None or not deployment.serves(probe[0]):
        return None
    return probe
