"""Item 6 of issue 13: a wildcard makes one deployment per model name a client sends, so nothing
kept per deployment may grow with the number of names (487k names took 43 -> 140 MB before)."""

from __future__ import annotations

import logging

import pytest

from seance.gateway import routes
from seance.gateway.config import load_settings
from seance.gateway.context import RequestContext
from seance.gateway.errors import UpstreamError
from seance.gateway.routing.deployments import MAX_DYNAMIC, Deployments
from seance.gateway.routing.router import Recent, Router
from seance.gateway.upstream.mock import MockTransport


def test_distinct_names_under_a_wildcard_keep_memory_flat(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "seance.gateway")  # one WARNING per failure: not the subject here
    settings = load_settings(None, {"OPENAI_API_KEY": "sk-test-0123456789"})  # no-config: `*` routes by name
    deployments = Deployments(settings)
    router = Router(settings, deployments, MockTransport(lambda request: AssertionError("no request")))

    ctx = RequestContext("churn", routes.CHAT, "POST", "/v1/chat/completions")

    def churn(first: int, count: int) -> None:
        for number in range(first, first + count):
            deployment = deployments.lookup(f"openai/model-{number}")[0]
            router._failed(ctx, deployment, UpstreamError("boom"), True)  # what the router records per try
            router.health.last_success[deployment.id] = float(number)

    churn(0, 3 * MAX_DYNAMIC)
    # unbounded, the health records grew by one per name
    assert len(router.health.last_error) <= MAX_DYNAMIC and len(router.health.last_success) <= MAX_DYNAMIC
    assert len(deployments._dynamic) <= MAX_DYNAMIC
    assert len(router.cooldowns._fails) <= MAX_DYNAMIC and len(router.cooldowns._until) <= MAX_DYNAMIC


def test_configured_deployments_are_never_forgotten() -> None:
    recent: Recent[int] = Recent(frozenset({"configured"}), limit=3)
    recent["configured"] = 0
    for number in range(100):
        recent[f"wild-{number}"] = number
    assert "configured" in recent and len(recent) == 4
    assert list(recent)[1:] == ["wild-97", "wild-98", "wild-99"]
