"""The fronts: the API shapes the gateway speaks to clients (OpenAI's, Anthropic's), plus the model
list and health. Each front renders its own errors; `app.py` picks the front by the route."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seance.gateway.context import Headers, RequestContext
from seance.gateway.errors import BadRequest
from seance.gateway.formats.openai import Usage

# Gateway-level fields a client may send whose effect Seance does not offer yet, and whose silent
# absence would surprise: a test that calls the real provider (and bills), guardrails that do not
# run. Refused, naming the field, rather than ignored. (mock_response and the mock_testing_* fields
# work: routing/mocks.py.)
NOT_YET = (
    "mock_tool_calls", "mock_timeout", "mock_delay", "guardrails",
)  # fmt: skip


def refuse_unsupported(ctx: RequestContext) -> None:
    for name in ctx.gateway_fields:
        if name.startswith(NOT_YET):
            raise BadRequest(f"'{name}' is not supported by this gateway yet", param=name, code="unsupported_parameter")


NO_RETRIES = ((b"x-litellm-attempted-retries", b"0"), (b"x-litellm-attempted-fallbacks", b"0"))


def route_headers(ctx: RequestContext, usage: Usage | None = None) -> None:
    """x-litellm-model-id, -response-cost (when known before the body), -attempted-retries/-fallbacks."""
    headers = ctx.response_headers
    if ctx.deployment is not None:
        headers.append(ctx.deployment.id_header)
        if usage is not None and (cost := ctx.deployment.cost(usage)) is not None:
            ctx.cost = cost  # finish() keeps it
            headers.append((b"x-litellm-response-cost", usd(cost)))
    if ctx.retries or ctx.fallbacks:
        headers.append((b"x-litellm-attempted-retries", str(ctx.retries).encode()))
        headers.append((b"x-litellm-attempted-fallbacks", str(ctx.fallbacks).encode()))
    else:  # the common case, made once
        headers += NO_RETRIES
    if ctx.provider_limits:
        _provider_limits(headers, ctx.provider_limits)


def _provider_limits(headers: Headers, limits: Sequence[tuple[bytes, bytes]]) -> None:
    """The provider's x-ratelimit-* headers, for what the gateway's own limits (pipeline/limits.py)
    do not report: a caller without an rpm limit sees the provider's requests left, one without a
    tpm limit its tokens left (LiteLLM's proxy does the same)."""
    own = {name.rpartition(b"-")[2] for name, _ in headers if name.startswith(b"x-ratelimit-")}
    headers += [(name, value) for name, value in limits if name.rpartition(b"-")[2] not in own]


def usd(cost: float) -> bytes:
    """A cost in US dollars as a header value: fixed decimals to the picodollar ("0.0000066"), made
    with integer arithmetic. Formatting the float itself (repr: "6.5999999999999995e-06") ran
    dtoa's bignum arithmetic, 14k instructions, 3 % of a pass-through request (bench/instructions.py)."""
    pico = round(cost * 1e12)
    if pico <= 0:
        return b"0.0"
    digits = str(pico).rjust(13, "0")  # str() of an int and slicing: %-formatting cost as much as repr
    return (digits[:-12] + "." + (digits[-12:].rstrip("0") or "0")).encode()


def read_request(ctx: RequestContext, body: dict[str, Any], kept: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The context learns the model, stream flag and gateway-level fields; returns what may go upstream."""
    ctx.model = body["model"]
    ctx.stream = body.get("stream") is True
    upstream = ctx.read_gateway_fields(body, kept)
    if ctx.gateway_fields:
        refuse_unsupported(ctx)
    return upstream
