"""general_settings.background_health_checks: one cheap call per deployment every
health_check_interval seconds, in the background, feeding /health and the cooldowns.

    chat (the default)      {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    model_info.mode         completion: the prompt "hi", max_tokens 1; embedding: the input "hi"
    model_info.health_check_model   the model the probe asks for instead of the deployment's

The configured deployments are probed (a wildcard's are made per request: nothing to probe), at
most CONCURRENCY at a time, each bounded by its timeout (at most TIMEOUT). A probe's outcome is
recorded as real traffic's is (Health: last error, last success); a deployment whose probe fails
in a way a request would (a timeout, a reset, 408/429/5xx, 401/404) cools down at once, when its
group has another one. /health only reads what the probes found.

Once per interval, not once per worker: with a shared Redis (bus.py) the rounds are numbered by the
wall clock (time // interval) and every worker and replica with the same probed deployments tries
to claim each one (`SET seance:health:round:<fleet>:<n> NX`); the one that gets it probes and
publishes the outcomes (stored at `seance:health:results:<fleet>`, sent on the channel
`seance:health:<fleet>`), which every worker records for /health; a failed probe's cooldown is
shared like any other (cooldowns.py). `<fleet>` is a digest of the probed deployment ids and the
interval, so gateways with other configs on the same Redis keep their own rounds. Without Redis,
or while it does not answer, each worker probes for itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from seance.gateway.context import RequestContext
from seance.gateway.errors import GatewayError, UpstreamError
from seance.gateway.providers.base import Call, Operation
from seance.gateway.routes import HEALTH
from seance.gateway.routing.deployments import Deployment
from seance.gateway.routing.proxy import Proxy

if TYPE_CHECKING:
    from seance.gateway.routing.bus import Bus

DEFAULT_INTERVAL = 300.0  # LiteLLM's health_check_interval
CONCURRENCY = 4
TIMEOUT = 60.0
COOLING = frozenset({401, 404})  # a probe answered so: every request would be
ROUND, RESULTS, CHANNEL = "health:round:", "health:results:", "health:"  # + the fleet, under the bus's prefix
log = logging.getLogger("seance.gateway")
# one probe's outcome: the deployment id, when it ended (wall clock), the error (None: success)
Outcome = tuple[str, float, str | None]

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
        record: Callable[[Deployment, GatewayError | None], Awaitable[None]],
        interval: float | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`record(deployment, error)`: the router's bookkeeping of an outcome (None: success)."""
        self.deployments = [d for d in deployments if not d.missing_key and _probe(d) is not None]
        self.proxy = proxy
        self.record = record
        self.interval = interval or DEFAULT_INTERVAL
        self.wall = wall
        self.outcomes: dict[str, Outcome] = {}  # of this worker's last round
        self.bus: Bus | None = None
        self.heard: Callable[[Outcome], None] = lambda outcome: None
        ids = "\n".join(sorted(d.id for d in self.deployments)) + f"\n{self.interval!r}"
        self.fleet = hashlib.blake2b(ids.encode(), digest_size=8).hexdigest()
        self._ids = frozenset(d.id for d in self.deployments)
        self._task: asyncio.Task[None] | None = None

    def share(self, bus: Bus, heard: Callable[[Outcome], None]) -> None:
        """One round per interval for every worker on `bus`; `heard`: an outcome another worker
        found (or this one: its own message comes back too)."""
        self.bus, self.heard = bus, heard
        bus.subscribe(CHANNEL + self.fleet, self._heard, self._catch_up)

    async def run_once(self) -> None:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(deployment: Deployment) -> None:
            async with limit:
                await self.check(deployment)

        await asyncio.gather(*(one(d) for d in self.deployments))
        if self.bus is not None:
            results = orjson.dumps([self.outcomes[d.id] for d in self.deployments if d.id in self.outcomes])
            keep = int(3 * self.interval * 1000)  # results older than a few rounds are no one's news
            await self.bus.publish(CHANNEL + self.fleet, results, RESULTS + self.fleet, results, keep)

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
            # gated: a probe asks whether the deployment answers, not for a place among its callers
            await self.proxy.complete(ctx, call, deployment, min(deployment.timeout, TIMEOUT), gated=True)
        except GatewayError as exc:
            error = exc
        self.outcomes[deployment.id] = (deployment.id, self.wall(), None if error is None else error.message)
        await self.record(deployment, error)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            number = int(self.wall() // self.interval)  # the same round on every worker and replica
            try:
                if await self._claim(number):
                    await self.run_once()
            except Exception:  # a bug: logged, and the checks go on
                log.exception("background health checks failed")
            await asyncio.sleep(max(0.0, (number + 1) * self.interval - self.wall()))

    async def _claim(self, number: int) -> bool:
        if self.bus is None:
            return True
        # kept two rounds: a replica whose clock lags still finds the round taken
        return await self.bus.claim(f"{ROUND}{self.fleet}:{number}", int(2 * self.interval * 1000))

    def _heard(self, message: bytes) -> None:
        try:
            outcomes = orjson.loads(message)
        except orjson.JSONDecodeError:
            return
        for item in outcomes if isinstance(outcomes, list) else ():
            match item:
                case [str() as deployment_id, float() | int() as when, str() | None as error] if (
                    deployment_id in self._ids
                ):
                    self.heard((deployment_id, float(when), error))

    async def _catch_up(self) -> None:
        """The last round's outcomes, for a worker that was not listening when they were sent."""
        assert self.bus is not None
        values = await self.bus.read([RESULTS + self.fleet])
        if values and values[0] is not None:
            self._heard(values[0])


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
