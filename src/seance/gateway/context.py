"""One object per request, created on arrival and completed after the last byte.

Everything a hook needs travels here (who, what, where it went, what it cost, how long each part
took, how it ended), so no hook reaches into another or into the handlers. Timings are
`time.perf_counter()` readings; `started_at` is the wall-clock arrival for logs and records.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import register_at_fork, urandom
from time import time_ns
from typing import TYPE_CHECKING, Any

from seance.gateway.formats.openai import Usage

if TYPE_CHECKING:
    from seance.gateway.errors import GatewayError
    from seance.gateway.ratelimits import Held
    from seance.gateway.routes import Route
    from seance.gateway.routing.deployments import Deployment
    from seance.gateway.store.model_budgets import PerModel

Headers = list[tuple[bytes, bytes]]


def new_request_id() -> str:
    """A request id when the client sent none: a UUIDv7 (RFC 9562) in 32 hex digits, milliseconds
    since the epoch first. Time-ordered, so the spend log's request_id index grows at its end: a
    random id put each insert anywhere in it and cost SQLite 9 us more a row (half of the row).
    Made as one 128-bit number (formatting its parts as text apart cost 1.7k instructions more).

    Its random bits come from the operating system's generator, read 4 KiB at a time: `urandom(10)`
    per request was a getrandom() system call, one of the three a request made besides its reads
    and writes (strace -c, the seance-all config at c=64), ~0.45 us against ~0.1 for a slice.
    Called from the event loop's thread only (a slice is not taken atomically)."""
    global _random_at, _random
    at = _random_at
    if at >= RANDOM_POOL:
        _random, at = urandom(RANDOM_POOL), 0
    _random_at = at + 10
    bits = int.from_bytes(_random[at : at + 10])
    return (time_ns() // 1_000_000 << 80 | bits & _RANDOM | _VERSION).to_bytes(16).hex()


RANDOM_POOL = 4096 - 4096 % 10  # bytes read at once: 409 ids
_random, _random_at = b"", RANDOM_POOL


def _forget_random() -> None:
    """A forked child reads its own bytes: two workers must never hand out the same ids."""
    global _random_at
    _random_at = RANDOM_POOL


register_at_fork(after_in_child=_forget_random)


_RANDOM = ((1 << 80) - 1) ^ (0xF << 76) ^ (0x3 << 62)  # the 74 random bits of the 80 after the time
_VERSION = 0x7 << 76 | 0b10 << 62  # version 7, variant 0b10


class _Nothing(dict[str, Any]):
    """One empty mapping shared by every context: a dict (its checks stay at C speed) that refuses
    to be filled, and is hashable so that it may be a dataclass default."""

    def __setitem__(self, key: str, value: Any) -> None:
        raise TypeError("the shared empty mapping cannot be filled; assign a new dict instead")

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("the shared empty mapping cannot be filled; assign a new dict instead")

    def setdefault(self, key: str, default: Any = None) -> Any:
        raise TypeError("the shared empty mapping cannot be filled; assign a new dict instead")

    def __hash__(self) -> int:  # type: ignore[override]
        return 0


NOTHING: Mapping[str, Any] = _Nothing()

# LiteLLM's gateway-level request fields: they steer the gateway (routing, retries, cache, logging,
# testing), so they are read into the context and never sent to a provider, which would refuse
# them ("Unrecognized request argument"). What each does belongs to the feature that owns it.
GATEWAY_FIELDS = frozenset({
    "metadata", "tags", "fallbacks", "context_window_fallbacks", "num_retries", "max_retries", "timeout",
    "stream_timeout", "request_timeout", "caching", "cache", "no-log", "guardrails", "mock_response",
    "mock_tool_calls", "mock_timeout", "mock_delay", "mock_testing_fallbacks", "mock_testing_rate_limit_error",
    "mock_testing_content_policy_fallbacks", "mock_testing_context_window_fallbacks", "drop_params",
    "additional_drop_params", "litellm_logging_obj", "proxy_server_request", "litellm_metadata",
    "disable_fallbacks", "model_group", "litellm_call_id", "litellm_session_id", "ttl", "allowed_model_region",
    "prompt_id", "prompt_variables", "user_api_key_alias", "spend_logs_metadata", "team_id", "tpm_limit",
    "rpm_limit", "budget_duration", "max_budget", "input_cost_per_token", "output_cost_per_token",
})  # fmt: skip
# Fields that pick where a request goes: the gateway decides that from its config, so they are
# dropped rather than obeyed (a request body must never redirect the gateway or swap its key).
ROUTING_FIELDS = frozenset({"api_base", "base_url", "api_key", "api_version", "custom_llm_provider", "azure_ad_token"})
NOT_FORWARDED = GATEWAY_FIELDS | ROUTING_FIELDS


def presented_key(credential: bytes) -> bytes:
    """The key in an `Authorization: Bearer <key>` (or `x-api-key` / `api-key`) header value."""
    if credential[:7].lower() == b"bearer ":
        return credential[7:].strip()
    return credential.strip()


@dataclass(frozen=True, slots=True)
class Limits:
    """One set of limits that applies to a request, and whose they are. The auth hook lists them on
    the Caller (the key's, its team's, its user's, the end user's); the limits hook enforces each."""

    scope: str  # whose counters: "key:<hash>", "team:<id>", "user:<id>", "end_user:<id>", "org:<id>"
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None  # LiteLLM's max_parallel_requests
    model_rpm: Mapping[str, int] = NOTHING  # per model group (LiteLLM's model_rpm_limit)
    model_tpm: Mapping[str, int] = NOTHING


# What stands for the master key where LiteLLM (1.108) records who called: the spend log's
# api_key and the metrics' hashed_api_key (LITELLM_PROXY_MASTER_KEY_ALIAS). Never the key's hash:
# an unsalted SHA-256 of a short master key is found again by trying candidates.
MASTER_KEY_ALIAS = "litellm_proxy_master_key"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request, once authenticated: the master key, or a virtual key and whose it is."""

    kind: str  # "master", "anonymous" (no auth configured), "virtual_key"
    key_hash: str | None = None  # SHA-256 hex of the key, as LiteLLM stores it; never the key itself
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    org_id: str | None = None
    team_alias: str | None = None  # (the metrics' labels, as LiteLLM's)
    user_email: str | None = None
    role: str = "proxy_admin"  # LiteLLM's user roles: proxy_admin, proxy_admin_viewer, internal_user, …
    # the model groups this caller may use (access groups expanded); None: all of them
    models: frozenset[str] | None = None
    limits: tuple[Limits, ...] = ()
    metadata: Mapping[str, Any] = NOTHING
    # the response cache's controls its requests may set (a key's allowed_cache_controls); None: all
    cache_controls: frozenset[str] | None = None
    # the budgets per model of the key, its team and its user (model_max_budget: store/model_budgets.py)
    model_budgets: PerModel | None = None


class RequestContext:
    """A plain class: its __init__ sets only what every request has, the rest are class-level
    defaults until a request sets them (a 30-field dataclass __init__ cost microseconds a request)."""

    id: str
    route: Route
    method: str
    path: str
    received: float
    started_at: float
    credential: bytes = b""  # the key presented, as sent; hooks only, never logged
    query: bytes = b""  # the query string, as sent (the GET endpoints' filters)
    caller: Caller | None = None
    # the request, as far as the gateway reads it
    model: str | None = None
    stream: bool = False
    # LiteLLM's end user / customer: the x-litellm-customer-id or -end-user-id header, else `user`
    end_user: str | None = None
    end_user_limits: Limits | None = None  # theirs (their budget row's), set by the auth hook
    # the budgets per model the request is held to (store/model_budgets.py), set by the auth hook:
    # the spend hook counts its spend in their scopes too
    model_budget_scopes: tuple[str, ...] = ()
    # (empty mappings are one shared, read-only object: most requests have none of these)
    gateway_fields: Mapping[str, Any] = NOTHING  # GATEWAY_FIELDS the client sent
    # the request's body as the client sent it, when it goes upstream as it is (b"" when the
    # gateway took fields out of it)
    body_bytes: bytes = b""
    client_headers: Mapping[str, str] = NOTHING  # headers an adapter may forward (anthropic-version)
    header_options: Mapping[str, str] = NOTHING  # x-litellm-timeout, -num-retries, …
    # the route taken
    deployment: Deployment | None = None
    retries: int = 0
    fallbacks: int = 0
    limits_held: Held | None = None  # what the limits hook counted, settled after the answer
    in_global: bool = False  # counted in general_settings.global_max_parallel_requests until it ends
    # the limits hook's Plan of a request under a key's per-model limits, while metrics are on: what
    # is left of them is noted after the answer (litellm_remaining_api_key_*_for_model)
    limits_plan: Any = None
    # the deployment whose shared rpm/tpm count the limits hook counted this request in, with the
    # caller's limits (one round trip): the router sends its first try there without counting it
    # again, and says so (counted_sent); not sent there, the hook gives the count back
    counted_deployment: Deployment | None = None
    counted_sent: bool = False
    # what the provider's rate limits have left, from the last try's answer, under OpenAI's header
    # names (UpstreamResponse.rate_limits): sent on where the gateway's own limits say nothing
    provider_limits: Sequence[tuple[bytes, bytes]] = ()
    # the tries that failed, as (deployment, upstream status, sent, failed, error class) — filled on
    # failures only
    failed_attempts: tuple[tuple[Deployment, int | None, float | None, float, str], ...] = ()
    # the outcome
    usage: Usage | None = None
    cost: float | None = None
    status: int = 0
    error: GatewayError | None = None
    cache_hit: bool = False
    # set by the cache hook on a miss it may store: the answer's bytes as the client is sent them
    capture: list[bytes] | None = None
    cache_checked: bool = False  # the cache was looked up (a miss unless cache_hit): for metrics
    cache_lookup: tuple[str, Any, Any] | None = None  # (key, controls, reply) sent by the cache's start
    # the cache's start found the answer in this process (its copy of a Redis entry): the limits
    # hook leaves out the deployment it would count with the caller (a hit never goes there)
    answer_known: bool = False
    # timings (perf_counter readings; None until they happen)
    upstream_sent: float | None = None  # the last try's request to the provider
    upstream_first_byte: float | None = None
    client_first_byte: float | None = None
    ended: float | None = None
    # response headers gathered on the way; sent with the answer's first byte
    response_headers: Headers

    def __init__(self, id: str, route: Route, method: str, path: str) -> None:
        self.id, self.route, self.method, self.path = id, route, method, path
        self.received = time.perf_counter()
        self.started_at = time.time()
        self.response_headers = []

    def __repr__(self) -> str:  # never the credential
        return f"<RequestContext {self.id} {self.method} {self.path} status={self.status}>"

    @property
    def front(self) -> str:
        return self.route.front

    @property
    def endpoint(self) -> str:
        return self.route.name

    @property
    def duration(self) -> float | None:
        """Seconds from arrival to the last byte."""
        return None if self.ended is None else self.ended - self.received

    def read_gateway_fields(self, body: dict[str, Any], kept: frozenset[str] = frozenset()) -> dict[str, Any]:
        """Take the gateway-level fields out of `body` into the context; returns the body that may
        go upstream (the same object when there were none: the common case costs one set lookup).
        `kept`: names that are the front's own API fields (Anthropic's `metadata`)."""
        if body.keys().isdisjoint(NOT_FORWARDED):
            return body
        taken = NOT_FORWARDED - kept
        self.gateway_fields = {k: v for k, v in body.items() if k in GATEWAY_FIELDS and k not in kept}
        return {k: v for k, v in body.items() if k not in taken}

    def finish(self, status: int) -> None:
        """The last byte is sent: the outcome is known."""
        self.ended = time.perf_counter()
        self.status = status
        if self.deployment is not None and self.usage is not None and not self.cache_hit and self.cost is None:
            self.cost = self.deployment.cost(self.usage)
