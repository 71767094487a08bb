"""The ordered hook list — the one place that says what runs around every API request.

Before the provider: top to bottom. After the last byte: bottom to top. A feature that is off is
not in the list. Where the next features go:

    metrics       first: counts every request in flight; Prometheus    on_request                   after
    auth          who is calling (master key; virtual keys)            before
    limits        rpm / tpm / parallel / budget                        before (and after: tokens used)
    cache         lookup (may answer)                                  before; store                after
    access log    one line per request                                                             after
    traces        OpenTelemetry spans (request, each try of a provider)                            after
    spend         usage → cost → spend log, batched                                                after
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from seance.gateway.config import ConfigError, Settings
from seance.gateway.logs import AccessWriter
from seance.gateway.metrics import Metrics
from seance.gateway.pipeline import Hook, cache
from seance.gateway.pipeline.access_log import AccessLog
from seance.gateway.pipeline.auth import Auth
from seance.gateway.pipeline.metrics import MetricsHook

if TYPE_CHECKING:
    from seance.gateway.shared_state import RedisSettings


@dataclass(frozen=True)
class Features:
    """What the start asked for, beside the config file."""

    master_key: str | None
    allow_no_auth: bool = False
    access_log: bool = False
    log_format: str = "plain"
    settings: Settings | None = None  # the config file's features (the response cache)
    # Rate limits can apply: some caller may carry Limits (virtual keys: set when a keys store is
    # configured). Off, the limits hook is not in the list and master-key requests pay nothing.
    limits: bool = False
    redis: RedisSettings | None = None  # shared_state.find_redis(settings): where shared state lives
    metrics: Metrics | None = None  # Prometheus (litellm_settings.callbacks: [prometheus], --metrics)
    traces_endpoint: str | None = None  # OTLP/HTTP (callbacks: [otel] + OTEL_EXPORTER_OTLP_ENDPOINT)


def build(features: Features) -> list[Hook]:
    hooks: list[Hook | None] = [
        # first: counts a request in flight before anything may refuse it; after: sees the final outcome
        MetricsHook(features.metrics) if features.metrics is not None else None,
        Auth(features.master_key, features.allow_no_auth),
        _limits(features) if features.limits else None,
        cache.build(features.settings) if features.settings is not None else None,
        AccessLog(AccessWriter(features.log_format)) if features.access_log else None,
        _traces(features.traces_endpoint) if features.traces_endpoint else None,
    ]
    return [hook for hook in hooks if hook is not None]


def _limits(features: Features) -> Hook:
    from seance.gateway.pipeline.limits import RateLimits
    from seance.gateway.ratelimits.memory import MemoryStore
    from seance.gateway.ratelimits.shared import SharedStore

    return RateLimits(SharedStore(features.redis) if features.redis is not None else MemoryStore())


def _traces(endpoint: str) -> Hook:
    """OpenTelemetry is an optional extra: imported here, only when traces are on."""
    try:
        from seance.gateway.pipeline.traces import Traces, otlp_exporter
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise ConfigError(
            "litellm_settings.callbacks names otel, whose packages are not installed: pip install 'seance[otel]'"
        ) from None

    return Traces(otlp_exporter(endpoint))
