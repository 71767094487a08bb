"""GET /v1/models and /v1/models/{id}: what this gateway serves, in OpenAI's list shape."""

from __future__ import annotations

import time
from typing import Any

from seance.gateway.routing.deployments import Deployments


class ModelsFront:
    def __init__(self, deployments: Deployments) -> None:
        self.deployments = deployments
        self.started = int(time.time())

    def list(self) -> dict[str, Any]:
        return {"object": "list", "data": [self._model(name) for name in self.deployments.model_names()]}

    def get(self, name: str) -> dict[str, Any]:
        self.deployments.lookup(name)  # ModelNotFound (404) when it is not served
        return self._model(name)

    def _model(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self.started, "owned_by": "seance"}
