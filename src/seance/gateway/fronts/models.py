"""GET /v1/models and /v1/models/{id}: what this gateway serves, in OpenAI's list shape."""

from __future__ import annotations

import time
from typing import Any

from seance.gateway.errors import ModelNotFound
from seance.gateway.routing.deployments import Deployments
from seance.gateway.store.keys import model_allowed


class ModelsFront:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments
        self.started = int(time.time())

    def list(self, allowed: frozenset[str] | None = None) -> dict[str, Any]:
        """Every model group, or those of `allowed` (a virtual key's models)."""
        names = self.deployments.model_names()
        if allowed is not None:
            names = [name for name in names if model_allowed(allowed, name)]
        return {"object": "list", "data": [self._model(name) for name in names]}

    def get(self, name: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
        if allowed is not None and not model_allowed(allowed, name):
            raise ModelNotFound(f"model {name} is not served to this key", param="model")
        self.deployments.lookup(name)  # ModelNotFound (404) when it is not served
        return self._model(name)

    def _model(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.started, "owned_by": "seance"}
