"""One exception tree for everything the gateway answers with an error.

    GatewayError                 500 api_error (never raised for bad input)
    ├── BadRequest               400 invalid_request_error
    │   └── PayloadTooLarge      413 invalid_request_error
    ├── Unauthorized             401 authentication_error
    ├── Forbidden                403 permission_error
    ├── ModelNotFound            404 invalid_request_error / model_not_found
    ├── RateLimited              429 rate_limit_error
    ├── GatewayBusy              503 api_error / gateway_busy (its own limit, not the provider's)
    ├── UpstreamTimeout          504 timeout
    └── UpstreamError            502 api_error, or the upstream's own 4xx status passed through
        └── UpstreamTooLarge     502, not retried: an answer beyond the gateway's limits

Each knows its HTTP status and renders OpenAI's error envelope, so handlers only `raise`. A
provider's refusal may also carry a `kind` (CONTEXT_WINDOW, CONTENT_POLICY), set by the adapter that
recognised it, which the router answers with LiteLLM's context_window_fallbacks and
content_policy_fallbacks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import orjson

CONTEXT_WINDOW = "context_window"  # the request does not fit the model's context window
CONTENT_POLICY = "content_policy"  # the provider refused the content


class GatewayError(Exception):
    status: int = 500
    type: str = "api_error"
    default_code: str | None = None
    kind: str | None = None  # CONTEXT_WINDOW, CONTENT_POLICY or None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        if status is not None:
            self.status = status
        self.headers: Mapping[str, str] = headers or {}

    @property
    def retryable(self) -> bool:
        """Whether another try, here or on another deployment, could succeed."""
        return self.status in (408, 409, 429) or self.status >= 500

    def to_dict(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code if self.code is not None else str(self.status),
            }
        }

    def body(self) -> bytes:
        return orjson.dumps(self.to_dict())


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLarge(BadRequest):
    status = 413


class Unauthorized(GatewayError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class Forbidden(GatewayError):
    status = 403
    type = "permission_error"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "model_not_found"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "timeout"
    default_code = "timeout"


class UpstreamError(GatewayError):
    """The provider failed (5xx, reset, garbage: 502) or refused the request (its 4xx, passed on)."""

    status = 502
    type = "api_error"

    def __init__(self, message: str, *, upstream_status: int | None = None, **kwargs: object) -> None:
        status = upstream_status if upstream_status is not None and 400 <= upstream_status < 500 else None
        super().__init__(message, status=status, **kwargs)  # type: ignore[arg-type]
        self.upstream_status = upstream_status
        if status is not None:
            self.type = _TYPE_BY_STATUS.get(status, "invalid_request_error")


class UpstreamTooLarge(UpstreamError):
    """An answer beyond the gateway's limits: asking again would bring the same answer."""

    @property
    def retryable(self) -> bool:
        return False


class GatewayBusy(GatewayError):
    """The gateway's own limit (connections to an upstream) is reached: not the provider's fault."""

    status = 503
    default_code = "gateway_busy"

    @property
    def retryable(self) -> bool:
        return False  # another try would wait in the same line


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


# Where a translation error goes: a value of the wrong type deep inside a request is the client's
# fault (400), inside an answer the provider's (502); never a 500.
SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)


@contextmanager
def client_shape(provider: str) -> Iterator[None]:
    try:
        yield
    except SHAPE_ERRORS as exc:
        raise BadRequest(f"{provider}: the request has a value of the wrong type or shape ({exc})") from exc


@contextmanager
def upstream_shape(provider: str) -> Iterator[None]:
    try:
        yield
    except SHAPE_ERRORS as exc:
        raise UpstreamError(f"{provider}: answered in a shape the gateway does not understand ({exc})") from exc


REDACTED = "[redacted]"


class Redactor:
    """Takes every configured secret (provider keys, the master key, passwords in api_bases) out of
    text that came from an upstream, so a provider that echoes a key in an error does not show it
    to the client or the log. Built once at start; costs nothing until an error is relayed."""

    MIN_LENGTH = 8  # shorter values are not keys, and would mangle ordinary words

    def __init__(self, secrets: Iterable[str | None]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= self.MIN_LENGTH}, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, self.secrets))) if self.secrets else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        text = self._pattern.sub(REDACTED, text)
        for secret in self.secrets:  # a secret cut short where the provider's text was truncated
            for length in range(len(secret) - 1, self.MIN_LENGTH - 1, -1):
                if text.endswith(secret[:length]):
                    return text[:-length] + REDACTED
        return text

    def error(self, exc: GatewayError) -> GatewayError:
        message = self(exc.message)
        if message != exc.message:
            exc.message = message
            exc.args = (message,)
        return exc
