"""router_settings.retry_policy (LiteLLM's RetryPolicy) and model_group_retry_policy: retries per
class of failure, over num_retries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.gateway.asgi_client import deployment, make_app, request
from tests.gateway.routing.test_router import CHAT

from seance.gateway.config import ConfigError
from seance.gateway.errors import GatewayError, RateLimited, UpstreamError, UpstreamTimeout
from seance.gateway.routing.router import retry_class
from seance.gateway.upstream.mock import MockResponse

LIMITED = MockResponse(429, b'{"error":{"message":"slow down"}}', {"retry-after": "0"})
DOWN = MockResponse(500, b'{"error":{"message":"boom"}}', {"retry-after": "0"})
BAD = MockResponse(400, b'{"error":{"message":"bad schema"}}', {"retry-after": "0"})
REFUSED = MockResponse(400, b'{"error":{"message":"rejected","code":"content_policy_violation"}}', {"retry-after": "0"})


def _app(tmp_path: Path, answer: MockResponse, router: dict[str, Any]) -> Any:
    config = {"model_list": [deployment("gpt", "openai/gpt-4o")], "router_settings": {"num_retries": 1, **router}}
    return make_app(tmp_path, config, lambda r: answer)


@pytest.mark.parametrize(
    ("answer", "policy", "tries"),
    [
        (LIMITED, {"RateLimitErrorRetries": 3}, 4),
        (LIMITED, {"InternalServerErrorRetries": 0}, 2),  # not named: num_retries
        (DOWN, {"InternalServerErrorRetries": 0}, 1),
        (BAD, {"RateLimitErrorRetries": 3}, 1),  # a 400 is not retried unless named
        (BAD, {"BadRequestErrorRetries": 1}, 2),
        (REFUSED, {"BadRequestErrorRetries": 3}, 1),  # a refusal is its own class
        (REFUSED, {"ContentPolicyViolationErrorRetries": 1}, 2),
    ],
)  # fmt: skip
def test_retries_per_error_class(tmp_path: Path, answer: MockResponse, policy: dict[str, int], tries: int) -> None:
    app, transport = _app(tmp_path, answer, {"retry_policy": policy})
    status = request(app, "POST", "/v1/chat/completions", CHAT).status
    assert status == (answer.status if answer.status < 500 else 502)
    assert len(transport.requests) == tries


def test_a_group_s_own_policy_wins(tmp_path: Path) -> None:
    router = {
        "retry_policy": {"RateLimitErrorRetries": 0},
        "model_group_retry_policy": {"gpt": {"RateLimitErrorRetries": 2}},
    }
    app, transport = _app(tmp_path, LIMITED, router)
    request(app, "POST", "/v1/chat/completions", CHAT)
    assert len(transport.requests) == 3


def test_an_unknown_policy_name_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"router_settings\.retry_policy\.RateLimitRetries"):
        _app(tmp_path, LIMITED, {"retry_policy": {"RateLimitRetries": 2}})


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (RateLimited("x"), "RateLimitErrorRetries"),
        (UpstreamTimeout("x"), "TimeoutErrorRetries"),
        (UpstreamError("x", upstream_status=401), "AuthenticationErrorRetries"),
        (UpstreamError("x", upstream_status=422), "BadRequestErrorRetries"),
        (UpstreamError("x", upstream_status=503), "InternalServerErrorRetries"),
        (UpstreamError("x"), "InternalServerErrorRetries"),
    ],
)
def test_error_classes(error: GatewayError, name: str) -> None:
    assert retry_class(error) == name
