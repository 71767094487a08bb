"""Health: the probes (liveness, readiness: no key, no work) and /health per deployment, from the
outcomes of real traffic — never a burst of live calls per probe."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from seance.gateway.errors import GatewayError
from seance.gateway.routing.deployments import Deployments
from seance.gateway.routing.router import Health
from seance.gateway.upstream import public_url

if TYPE_CHECKING:
    from seance.gateway.store import Store


class HealthFront:
    def __init__(
        self, deployments: Deployments, health: Health, store: Store | None = None, cache: str | None = None
    ) -> None:
        """`cache`: the response cache's type (local, redis), None when it is off."""
        self.deployments = deployments
        self.health = health
        self.store = store
        self.cache = cache
        self.draining = False  # set when a stop is asked: readiness answers 503 while requests finish

    def alive(self) -> str:
        return "I'm alive!"

    def ready(self) -> dict[str, Any]:
        """LiteLLM's fields. The database's state is what the gateway's own use of it last found
        (a probe asks it nothing), and an unreachable one does not make the gateway unready: known
        keys keep working and spend waits to be written (LiteLLM's allow_requests_on_db_unavailable)."""
        if self.draining:
            raise GatewayError("shutting down", status=503, code="draining")
        store = self.store
        db = "Not connected" if store is None else "connected" if store.reachable else "disconnected"
        return {"status": "healthy", "db": db, "cache": self.cache}

    def report(self, model: str | None = None) -> dict[str, Any]:
        """Every deployment's state; `model`: only those of that model name (an alias: its group's)."""
        if model is not None:
            model = self.deployments.aliases.get(model, model)
        healthy, unhealthy = [], []
        for deployment in self.deployments.all():
            if model is not None and deployment.model_name != model:
                continue
            entry: dict[str, Any] = {
                "model": f"{deployment.target.provider}/{deployment.target.model}",
                "model_name": deployment.model_name,
                "model_id": deployment.id,
                "api_base": public_url(deployment.target.api_base),
            }
            error = self.health.last_error.get(deployment.id)
            success = self.health.last_success.get(deployment.id, 0.0)
            if deployment.missing_key:
                unhealthy.append({**entry, "error": deployment.missing_key})
            elif error is not None and error[0] > success:
                unhealthy.append({**entry, "error": error[1], "since": int(error[0])})
            else:
                healthy.append(entry)
        return {
            "healthy_endpoints": healthy,
            "unhealthy_endpoints": unhealthy,
            "healthy_count": len(healthy),
            "unhealthy_count": len(unhealthy),
        }
