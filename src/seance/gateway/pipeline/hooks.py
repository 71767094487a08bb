"""The ordered hook list — the one place that says what runs around every API request.

Before the provider: top to bottom. After the last byte: bottom to top. A feature that is off is
not in the list. Where the next features go:

    metrics       first: counts every request in flight; Prometheus    on_request                   after
    auth          who is calling (master key; virtual keys)            on_request; before: model, end user
    required      fields every request must carry (enforced_params)    before
    global cap    requests in flight per process (global_max_…)        on_request                   after
    limits        rpm / tpm / parallel                                 before (and after: tokens used)
    cache         lookup (may answer)                                  before; store                after
    spend         usage → cost → spend log, batched (store/spend.py)                                after
    access log    one line per request                                                             after
    traces        OpenTelemetry spans (request, each try of a provider)                            after
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from seance.gateway.config import ConfigError, Settings, announce
from seance.gateway.logs import AccessWriter
from seance.gateway.metrics import Metrics
from seance.gateway.pipeline import Hook, cache
from seance.gateway.pipeline.access_log import AccessLog
from seance.gateway.pipeline.auth import Auth, KeyAuth
from seance.gateway.pipeline.metrics import MetricsHook
from seance.gateway.pipeline.required_params import RequiredParams, required_of
from seance.gateway.pipeline.spend import Spend

if TYPE_CHECKING:
    from seance.gateway.shared_state import RedisSettings
    from seance.gateway.store import Store
    from seance.gateway.trace_export import TraceExport


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
    traces: TraceExport | None = None  # OTLP/HTTP (callbacks: [otel] + OTEL_EXPORTER_OTLP_ENDPOINT)
    store: Store | None = None  # virtual keys, budgets and spend (None: the master key only)


def build(features: Features) -> list[Hook]:
    store = features.store
    hooks: list[Hook | None] = [
        # first: counts a request in flight before anything may refuse it; after: sees the final outcome
        MetricsHook(features.metrics) if features.metrics is not None else None,
        _key_auth(features, store) if store else Auth(features.master_key, features.allow_no_auth),
        _required(features.settings) if features.settings is not None else None,
        _global_cap(features.settings),
        # virtual keys carry limits (Caller.limits): the hook is in the list when keys can exist
        _limits(features) if features.limits or store is not None else None,
        cache.build(features.settings) if features.settings is not None else None,
        Spend(store, features.master_key, _tag_headers(features.settings)) if store else None,
        AccessLog(AccessWriter(features.log_format)) if features.access_log else None,
        _traces(features.traces) if features.traces is not None else None,
    ]
    return [hook for hook in hooks if hook is not None]


def _key_auth(features: Features, store: Store) -> Hook:
    """Virtual keys, and the end user from the headers the config names (user_header_mappings of
    role customer; the others' roles are not acted on: warned)."""
    names: tuple[str, ...] = ()
    settings = features.settings
    if settings is not None:
        general = settings.file.general_settings
        names = general.end_user_headers()
        announce(settings, [
            f"{settings.source}: general_settings.user_header_mappings[{i}]: litellm_user_role "
            f"{m.litellm_user_role} is not acted on (Seance reads the end user, role customer, from headers); ignored"
            for i, m in enumerate(general.user_header_mappings) if m.litellm_user_role != "customer"
        ])  # fmt: skip
    return KeyAuth(features.master_key, features.allow_no_auth, store, names)


def _required(settings: Settings) -> Hook | None:
    general = settings.file.general_settings
    required = required_of(general.enforce_user_param, general.enforced_params)
    return RequiredParams(required) if required else None


def _limits(features: Features) -> Hook:
    from seance.gateway.pipeline.limits import RateLimits
    from seance.gateway.ratelimits.memory import MemoryStore
    from seance.gateway.ratelimits.shared import SharedStore

    store = SharedStore(features.redis) if features.redis is not None else MemoryStore()
    return RateLimits(store, features.metrics)


def _tag_headers(settings: Settings | None) -> tuple[str, ...]:
    """litellm_settings.extra_spend_tag_headers: request headers that become spend tags."""
    return tuple(settings.file.litellm_settings.extra_spend_tag_headers) if settings is not None else ()


def _global_cap(settings: Settings | None) -> Hook | None:
    """general_settings.global_max_parallel_requests, when set."""
    cap = settings.file.general_settings.global_max_parallel_requests if settings is not None else None
    if cap is None:
        return None
    from seance.gateway.pipeline.limits import GlobalCap

    return GlobalCap(cap)


def _traces(export: TraceExport) -> Hook:
    """OpenTelemetry is an optional extra: imported here, only when traces are on."""
    try:
        from seance.gateway.pipeline.traces import Traces, exporter
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise ConfigError(
            "litellm_settings.callbacks names otel, whose packages are not installed: pip install 'seance[otel]'"
        ) from None

    return Traces(exporter(export), export.service_name, environment=export.environment)
